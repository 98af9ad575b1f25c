"""Value types and provider protocols of the rag package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Chunk:
    """One section-aware passage of a document."""

    id: str
    doc_id: str
    title: str
    section: str
    source: str
    text: str
    content_hash: str


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class RetrievalResult:
    """Ranked passages for a query, and whether they cover the query at all."""

    query: str
    hits: list[Hit]
    coverage: float
    covered: bool
    similarity: float | None = None  # best cosine of the question to a passage (with vectors)


@dataclass(frozen=True)
class SimilarityCalibration:
    """How one embedding model's best cosine similarity moves the covered decision: covered
    needs `coverage + weight * (similarity - neutral) >= min_coverage`, and never when the
    similarity is below `floor` (nothing in the documents is about the question)."""

    neutral: float
    weight: float
    floor: float


@dataclass
class IndexReport:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


class Embedder(Protocol):
    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


class Retriever(Protocol):
    async def search(self, query: str, k: int) -> RetrievalResult: ...
