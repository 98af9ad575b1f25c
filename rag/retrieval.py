"""Hybrid retrieval: BM25 (FTS5) with query expansion, fused with dense vectors, plus coverage."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from rag.errors import RagError
from rag.index_store import ColumnWeights, IndexStore
from rag.observe import NO_OBSERVER, RagObserver
from rag.text import QueryTerm, analyze_query, fts_phrase, named_terms
from rag.types import Chunk, Embedder, Hit, RetrievalResult, SimilarityCalibration
from rag.vector_store import SqliteVectors, VectorStore

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

# Change logs mention every feature in passing, so they outrank the page that explains it,
# unless the question is about versions.
CHANGELOG_NAME = re.compile(
    r"^(changes|changelog|change[-_ ]log|history|news|release[-_ ]?notes|releases)$", re.I
)
ABOUT_VERSIONS = re.compile(
    r"\b(v?\d+\.\d+(\.\d+)?|releases?|released|changelog|change log|deprecat\w*|removed"
    r"|dropped|going away|breaking changes?|what'?s new)\b",
    re.I,
)


NAME_MARGIN = 0.1  # extra coverage needed when the question names something the index lacks


@dataclass(frozen=True)
class RetrievalConfig:
    """Ranking knobs; the defaults are the best measured with `bench/retrieval/eval.py`."""

    column_weights: ColumnWeights = (4.0, 2.0, 1.0, 1.0)  # title, section, prose, code
    synonym_weight: float = 0.3  # a synonym's weight relative to the question's own word
    term_candidates: int = 400  # passages read per query word
    max_per_doc: int = 1  # passages of one document in the top k (0: no limit)
    changelog_factor: float = 0.6  # score factor of passages from change logs
    coverage_depth: int = 5  # passages whose words count towards coverage
    idf_prior: float = 50.0  # passages assumed to hold none of the words (steadies tiny indexes)
    dense_candidates: int = 100
    rrf_k: int = 60


@dataclass
class _Lexical:
    ranking: list[tuple[int, float]]
    df: dict[str, int] = field(default_factory=dict)
    total: int = 0


class HybridRetriever:
    """BM25 over the FTS5 index, fused with dense cosine ranking when vectors exist."""

    def __init__(
        self,
        store: IndexStore,
        embedder: Embedder | None = None,
        *,
        min_coverage: float = 0.6,
        config: RetrievalConfig | None = None,
        calibration: SimilarityCalibration | None = None,
        vectors: VectorStore | None = None,
        observer: RagObserver = NO_OBSERVER,
    ) -> None:
        self.store = store
        self.observer = observer
        self.embedder = embedder
        # Without a store of its own, an embedder's vectors are those kept in the index.
        if vectors is None and embedder is not None:
            vectors = SqliteVectors(store, embedder.name)
        self.vectors = vectors
        self.calibration = calibration
        self.min_coverage = min_coverage
        self.config = config or RetrievalConfig()
        self._changelogs: tuple[int, set[str]] = (-1, set())

    async def search(self, query: str, k: int) -> RetrievalResult:
        """The `k` best passages for `query` and whether they cover it."""
        terms = analyze_query(query, synonym_weight=self.config.synonym_weight)
        if k <= 0 or not terms:
            return RetrievalResult(query, [], 0.0, False)
        dense = await self._dense(query)
        about_versions = bool(ABOUT_VERSIONS.search(query))
        nearest = [rowid for rowid, _ in dense]
        hits, coverage, unknown = await asyncio.to_thread(
            self._search, terms, nearest, k, about_versions, named_terms(query)
        )
        similarity = dense[0][1] if dense else None
        # "1" or "20" matches numbers in the documents but asks nothing: a question needs a word.
        says_something = any(t.is_original and not t.text.isdigit() for t in terms)
        covered = says_something and self._covers(hits, coverage, unknown, similarity)
        return RetrievalResult(query, hits, coverage, covered, similarity)

    def _covers(
        self,
        hits: list[Hit],
        coverage: float,
        unknown_names: list[str],
        similarity: float | None = None,
    ) -> bool:
        """Enough of the question is in the passages, and it names nothing the documents never
        mention ("How do I add a column in PostgreSQL?" over web-framework docs), unless the
        coverage is clearly high.

        With a `calibration` of the embedder, the best cosine `similarity` of the question to a
        passage moves the coverage (up when a passage is close in meaning, down when none is),
        and a question far from every passage is never covered.
        """
        if not hits:
            return False
        scale = self.calibration
        if scale is not None and similarity is not None:
            if similarity < scale.floor:
                return False
            coverage += scale.weight * (similarity - scale.neutral)
        if coverage < self.min_coverage:
            return False
        return not unknown_names or coverage >= self.min_coverage + NAME_MARGIN

    # --- the synchronous part, run in a worker thread ------------------------------------------

    def _search(
        self,
        terms: list[QueryTerm],
        dense: list[int],
        k: int,
        about_versions: bool = False,
        names: Sequence[str] = (),
    ) -> tuple[list[Hit], float, list[str]]:
        """Hits, coverage, and the `names` the index never mentions, from one snapshot."""
        with self.store.snapshot():
            return self._search_snapshot(terms, dense, k, about_versions, names)

    def _search_snapshot(
        self,
        terms: list[QueryTerm],
        dense: list[int],
        k: int,
        about_versions: bool,
        names: Sequence[str],
    ) -> tuple[list[Hit], float, list[str]]:
        lexical = self._lexical(terms, about_versions)
        depth = max(k, self.config.coverage_depth)
        top, pool, chunks = self._top(lexical.ranking, depth)
        # Coverage is read on the BM25 passages whatever the ranking: the dense ones are close
        # in meaning, not in words, and would dilute it.
        coverage = self._coverage(terms, lexical, [r for r, _ in top], [r for r, _ in pool[:3]])
        if dense:
            fused = rrf([[rowid for rowid, _ in lexical.ranking], dense], self.config.rrf_k)
            top, _, chunks = self._top(fused, depth)
        hits = [Hit(chunks[rowid], score) for rowid, score in top[:k]]
        unknown = [
            n
            for n in names
            if not (lexical.df[n] if n in lexical.df else self.store.count_matches(fts_phrase(n)))
        ]
        return hits, coverage, unknown

    def _top(
        self, ranking: list[tuple[int, float]], depth: int
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]], dict[int, Chunk]]:
        """The diversified best `depth` of `ranking`, the candidates they were picked from
        (best first), and their chunks."""
        pool = ranking[: depth * 10] if self.config.max_per_doc else ranking[:depth]
        chunks = self.store.chunks(rowid for rowid, _ in pool)
        pool = [(rowid, score) for rowid, score in pool if rowid in chunks]
        return self._diversify(pool, chunks, depth), pool, chunks

    def _lexical(self, terms: list[QueryTerm], about_versions: bool = False) -> _Lexical:
        """BM25 of every query word (one FTS5 query each), weighted and summed per passage."""
        cfg = self.config
        scores: defaultdict[int, float] = defaultdict(float)
        result = _Lexical([], total=self.store.chunk_count())
        for term in terms:
            phrase = fts_phrase(term.text)
            rows = self.store.match(phrase, limit=cfg.term_candidates, weights=cfg.column_weights)
            if len(rows) < cfg.term_candidates:
                result.df[term.text] = len(rows)
            else:
                result.df[term.text] = self.store.count_matches(phrase)
            for rowid, score in rows:
                scores[rowid] += term.weight * score
        if cfg.changelog_factor != 1.0 and scores and not about_versions:
            changelogs = self._changelog_docs()
            if changelogs:
                doc_ids = self.store.chunk_doc_ids()
                for rowid in scores:
                    if doc_ids.get(rowid) in changelogs:
                        scores[rowid] *= cfg.changelog_factor
        result.ranking = sorted(scores.items(), key=lambda item: -item[1])
        return result

    def _changelog_docs(self) -> set[str]:
        generation = self.store.generation()
        if self._changelogs[0] != generation:
            found = {
                doc.doc_id
                for doc in self.store.documents().values()
                if CHANGELOG_NAME.match(PurePath(doc.source).stem)
                or CHANGELOG_NAME.match(doc.title.strip())
            }
            self._changelogs = (generation, found)
        return self._changelogs[1]

    def _diversify(
        self, ranking: list[tuple[int, float]], chunks: dict[int, Chunk], depth: int
    ) -> list[tuple[int, float]]:
        """The best `depth` of `ranking` with at most `max_per_doc` passages from one document
        (topped up with the others when too few documents matched), best first."""
        cap = self.config.max_per_doc
        if not cap:
            return ranking[:depth]
        taken: Counter[str] = Counter()
        top: list[tuple[int, float]] = []
        rest: list[tuple[int, float]] = []
        for rowid, score in ranking:
            doc_id = chunks[rowid].doc_id
            if taken[doc_id] < cap:
                taken[doc_id] += 1
                top.append((rowid, score))
                if len(top) >= depth:
                    break
            else:
                rest.append((rowid, score))
        return sorted((top + rest)[:depth], key=lambda item: -item[1])

    def _coverage(
        self, terms: list[QueryTerm], lexical: _Lexical, top: Sequence[int], best: Sequence[int]
    ) -> float:
        """How much of the question the top passages hold, from 0 to 1.

        The mean of two IDF-weighted shares of the question's words: those found anywhere in
        the `top` passages, and those found together in the best single passage of `best`.
        A word missing from the index weighs the most (the maximum IDF); another spelling or
        a synonym found instead earns the word its `credit`.
        """
        originals = [t.text for t in terms if t.is_original]
        if not originals or not top:
            return 0.0
        total = max(lexical.total, 1)
        weights = {}
        for word in originals:
            df = lexical.df.get(word, 0)
            weights[word] = math.log((total + self.config.idf_prior) / (df + 0.5))
        weight_sum = sum(weights.values())
        if not weight_sum:
            return 0.0
        present = [t for t in terms if lexical.df.get(t.text)]
        passages = list(dict.fromkeys([*top, *best]))
        found = {t.text: self.store.matching_among(fts_phrase(t.text), passages) for t in present}

        def share(rowids: set[int]) -> float:
            credit: dict[str, float] = {}
            for term in present:
                if found[term.text] & rowids and term.credit > credit.get(term.origin, 0.0):
                    credit[term.origin] = term.credit
            return sum(weights[w] * credit.get(w, 0.0) for w in originals) / weight_sum

        single = max((share({rowid}) for rowid in best), default=0.0)
        return (share(set(top)) + single) / 2

    # --- dense ---------------------------------------------------------------------------------

    async def _dense(self, query: str) -> list[tuple[int, float]]:
        """The chunks nearest to `query` with their cosine similarity, best first ([] without
        vectors, or when the embedder or the vector store fails: BM25 answers alone)."""
        if self.embedder is None or self.vectors is None or await self.vectors.is_empty():
            return []
        try:
            vector = (await self.embedder.embed([query]))[0]
        except RagError as exc:
            return self._without_dense("embeddings", self.embedder.name, query, exc)
        try:
            nearest = await self.vectors.query(vector, self.config.dense_candidates)
        except RagError as exc:
            return self._without_dense("vectors", self.vectors.name, query, exc)
        rowids = await asyncio.to_thread(self.store.chunk_rowids, [key for key, _ in nearest])
        return [(rowids[key], score) for key, score in nearest if key in rowids]

    def _without_dense(
        self, component: str, provider: str, query: str, exc: RagError
    ) -> list[tuple[int, float]]:
        log.warning("dense retrieval skipped for %r (%s failed): %s", query[:80], provider, exc)
        self.observer.stage_error("retrieve")
        self.observer.fallback(component, provider, "bm25")
        return []


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of several rankings of the same ids."""
    scores: defaultdict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] += 1.0 / (k + rank + 1)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def build_retriever(
    settings: Settings,
    store: IndexStore,
    embedder: Embedder | None,
    vectors: VectorStore | None = None,
    observer: RagObserver = NO_OBSERVER,
) -> HybridRetriever:
    """The retriever the bot uses: BM25, plus dense fusion when an embedder is configured (and
    its similarities in the covered decision when the embedder has a `calibration`); the
    vectors are those of the index unless another `vectors` store (Pinecone) is given."""
    calibration: SimilarityCalibration | None = getattr(embedder, "calibration", None)
    return HybridRetriever(
        store,
        embedder,
        min_coverage=settings.min_coverage,
        calibration=calibration,
        vectors=vectors,
        observer=observer,
    )
