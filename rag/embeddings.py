"""Text embeddings behind `Embedder`: an OpenAI-compatible API (through langchain-openai), or a
local sentence-transformers model (`EMBEDDINGS_MODEL=local`, see `rag.embeddings_local`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from rag.errors import ModelError
from rag.types import Chunk, Embedder

if TYPE_CHECKING:
    from bot.settings import Settings

MAX_INPUT_CHARS = 8000


def passage_text(chunk: Chunk) -> str:
    """What gets embedded for a chunk: its title and section path, then its text."""
    heading = " > ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{heading}\n\n{chunk.text}" if heading else chunk.text


class OpenAIEmbedder:
    """Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout: float = 30.0,
        max_retries: int = 2,
    ) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.name = model
        self.batch_size = max(1, batch_size)
        # check_embedding_ctx_length=False: send text as is; never fetch tiktoken's BPE files.
        self._client = OpenAIEmbeddings(
            model=model,
            base_url=base_url,
            api_key=SecretStr(api_key) if api_key else None,
            check_embedding_ctx_length=False,
            timeout=timeout,
            max_retries=max_retries,
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, requested `batch_size` texts at a time."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [(t[:MAX_INPUT_CHARS] or " ") for t in texts[start : start + self.batch_size]]
            try:
                vectors.extend(await self._client.aembed_documents(batch))
            except Exception as exc:  # the client raises many kinds (HTTP, timeout, parsing)
                raise ModelError(f"embeddings model {self.name!r} failed: {exc}") from exc
        if len(vectors) != len(texts):
            raise ModelError(f"embeddings model {self.name!r} returned {len(vectors)} vectors")
        return vectors


def build_embedder(settings: Settings) -> Embedder | None:
    """The configured embedder, or None when EMBEDDINGS_MODEL is unset (BM25 only).

    `local` is the packaged all-MiniLM-L6-v2, `local:/folder` a sentence-transformers folder
    (both run in-process; nothing is loaded until the first text is embedded); any other name
    is a model of the OpenAI-compatible embeddings API.
    """
    if not settings.embeddings_model:
        return None
    from rag.embeddings_local import LocalEmbedder, is_local, local_folder

    if is_local(settings.embeddings_model):
        return LocalEmbedder(local_folder(settings.embeddings_model))
    key = settings.embeddings_key
    return OpenAIEmbedder(
        settings.embeddings_model,
        base_url=settings.embeddings_base_url or settings.openai_base_url,
        api_key=key.get_secret_value() if key else None,
    )
