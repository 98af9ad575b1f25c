# Suara: `python -m bot serve` on port 8080 as a non-root user, with all state in /data.
#   docker build -t suara .
#   docker run -p 8080:8080 -v suara_data:/data --env-file .env suara
#   docker run --rm -v suara_data:/data --env-file .env suara python -m bot doctor
# ffmpeg comes from the imageio-ffmpeg wheel and the speech models from their wheels: no apt
# packages, no downloads at run time. No PyTorch: EMBEDDINGS_MODEL=local is not in the image.

# --- build: the dependencies, in a virtual environment that the runtime stage copies ----------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# pyproject.toml alone, with empty packages standing in for the code: this slow layer is rebuilt
# only when the dependencies change, not with every edit of the code or the docs.
COPY pyproject.toml ./
RUN touch README.md LICENSE \
 && for package in bot handlers rag speech storage; do \
      mkdir "$package" && touch "$package/__init__.py"; \
    done \
 && pip install --no-cache-dir . \
 && pip uninstall --yes suara

# --- runtime -----------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    LOG_FORMAT=json
# The app's user owns only /data; the code stays root's and read-only to it.
RUN useradd --create-home --uid 10001 --user-group suara \
 && mkdir /data \
 && chown suara:suara /data
COPY --from=build /opt/venv /opt/venv
# The code runs from /app (not site-packages), so docs/ beside it is the default knowledge base.
WORKDIR /app
COPY LICENSE ./
COPY bot ./bot
COPY handlers ./handlers
COPY rag ./rag
COPY speech ./speech
COPY storage ./storage
COPY docs ./docs
RUN python -m compileall -q bot handlers rag speech storage
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/health', timeout=4)"]
# serve stops gracefully on SIGTERM, letting answers finish for up to 10 s: stop with -t 30.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "serve"]
