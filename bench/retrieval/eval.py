"""Retrieval-quality benchmark: index a public corpus afresh, ask paraphrased questions, score.

    .venv/bin/python -m bench.retrieval.eval [--corpus click] [--k 5] [--json]

It goes through the project's real pipeline (`rag.indexer.index_sources` into a new
`rag.index_store.IndexStore` under a temporary DATA_DIR, then `rag.retrieval.build_retriever`)
and reports hit@1/3/5, MRR@k, search latency, the covered-rate on in-domain questions (false
declines) and on off-topic questions (false accepts), and every miss.

A hit at rank r is the first returned chunk whose source path ends with one of the question's
`expected_sources` (paths relative to the corpus root). It is a benchmark, not a test: it
exits 0 whatever the numbers are.

Settings come from the environment (not from `.env`), so `MIN_COVERAGE=0.5` or
`CHUNK_MAX_CHARS=800` in front of the command tries a variant. The embedder is off unless
`--embeddings` is given (then EMBEDDINGS_MODEL and friends are read from the environment;
`EMBEDDINGS_MODEL=local` is the packaged all-MiniLM-L6-v2, run offline on the CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPORA = HERE / "corpus"
QUESTIONS = HERE / "questions"
SHORT_WORDS = 6  # questions this short are counted as terse, voice-style ones


@dataclass
class Question:
    id: str
    question: str
    expected: list[str]
    section: str | None = None


@dataclass
class Outcome:
    question: Question
    rank: int | None  # 1-based rank of the first chunk from an expected source
    covered: bool
    coverage: float
    ms: float
    similarity: float | None = None  # best cosine of the question to a passage (with vectors)
    got: list[tuple[str, str, float]] = field(default_factory=list)  # (source, section, score)
    section_rank: int | None = None
    error: str | None = None


def load_questions(path: Path, *, in_domain: bool) -> list[Question]:
    out: list[Question] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item = json.loads(line)
        expected = [
            str(p).replace("\\", "/").lstrip("./") for p in item.get("expected_sources", [])
        ]
        if in_domain and not expected:
            raise SystemExit(f"{path}:{number}: no expected_sources")
        out.append(
            Question(
                id=str(item.get("id", f"{path.stem}-{number}")),
                question=item["question"],
                expected=expected,
                section=item.get("expected_section"),
            )
        )
    return out


def corpus_docs(root: Path) -> Path:
    """What to index: `<root>/docs` when the corpus keeps its documents there, else the root."""
    docs = root / "docs"
    return docs if docs.is_dir() else root


def relative_source(source: str, root: Path) -> str:
    try:
        return Path(source).resolve().relative_to(root.resolve()).as_posix()
    except (ValueError, OSError):
        return source


def matches(source: str, expected: list[str]) -> bool:
    source = source.replace("\\", "/")
    return any(source == exp or source.endswith("/" + exp) for exp in expected)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def ask(retriever: Any, question: Question, k: int, root: Path) -> Outcome:
    start = time.perf_counter()
    try:
        result = await retriever.search(question.question, k)
    except Exception as exc:  # one failing query is a data point, not the end of the run
        ms = (time.perf_counter() - start) * 1000
        return Outcome(question, None, False, 0.0, ms, error=f"{type(exc).__name__}: {exc}")
    similarity = getattr(result, "similarity", None)
    ms = (time.perf_counter() - start) * 1000
    rank = section_rank = None
    got: list[tuple[str, str, float]] = []
    for position, hit in enumerate(result.hits[:k], 1):
        chunk = hit.chunk
        got.append((relative_source(chunk.source, root), chunk.section, float(hit.score)))
        if rank is None and matches(chunk.source, question.expected):
            rank = position
        if (
            section_rank is None
            and question.section
            and matches(chunk.source, question.expected)
            and question.section.lower() in (chunk.section or "").lower()
        ):
            section_rank = position
    return Outcome(
        question,
        rank,
        bool(result.covered),
        float(result.coverage),
        ms,
        None if similarity is None else float(similarity),
        got,
        section_rank,
    )


@dataclass
class Plan:
    """What one run evaluates, resolved before the event loop starts."""

    label: str
    root: Path
    docs_dir: Path
    questions_path: Path
    questions: list[Question]
    offtopic: list[Question]


def plan(args: argparse.Namespace) -> Plan:
    root = Path(args.corpus_dir).resolve() if args.corpus_dir else CORPORA / args.corpus
    if not root.is_dir():
        raise SystemExit(f"no corpus at {root}")
    questions_path = Path(args.questions) if args.questions else QUESTIONS / f"{args.corpus}.jsonl"
    offtopic_path = (
        Path(args.offtopic) if args.offtopic else QUESTIONS / f"{args.corpus}-offtopic.jsonl"
    )
    questions = load_questions(questions_path, in_domain=True)
    offtopic = load_questions(offtopic_path, in_domain=False) if offtopic_path.is_file() else []
    if args.limit:
        questions = questions[: args.limit]
    label = str(root) if args.corpus_dir else args.corpus
    return Plan(label, root, corpus_docs(root), questions_path, questions, offtopic)


async def run(args: argparse.Namespace, job: Plan) -> dict[str, Any]:
    from bot.settings import load_settings
    from rag.index_store import IndexStore
    from rag.indexer import index_sources
    from rag.retrieval import build_retriever

    root, docs_dir, questions, offtopic = job.root, job.docs_dir, job.questions, job.offtopic
    questions_path = job.questions_path

    with tempfile.TemporaryDirectory(prefix="suara-bench-") as tmp:
        settings = load_settings(
            _env_file=None, data_dir=Path(tmp), knowledge_sources=[str(docs_dir)]
        )
        embedder = None
        load_s = 0.0
        if args.embeddings:
            from rag.embeddings import build_embedder

            embedder = build_embedder(settings)
            if embedder is None:
                raise SystemExit("--embeddings needs EMBEDDINGS_MODEL in the environment")
            warm_up = getattr(embedder, "warm_up", None)  # a local model: load it untimed
            if warm_up is not None:
                start = time.perf_counter()
                await warm_up()
                load_s = time.perf_counter() - start
        store = IndexStore(settings.path("index.sqlite3"))
        try:
            start = time.perf_counter()
            report = await index_sources(
                [str(docs_dir)], store, embedder, chunk_max_chars=settings.chunk_max_chars
            )
            index_s = time.perf_counter() - start
            retriever = await _maybe_await(build_retriever(settings, store, embedder))
            docs = store.document_count()
            chunks = store.chunk_count()
            in_domain = [await ask(retriever, q, args.k, root) for q in questions]
            off = [await ask(retriever, q, args.k, root) for q in offtopic]
        finally:
            try:
                store.close()
            except Exception as exc:  # closing must not hide the real outcome
                logging.getLogger(__name__).warning("closing the index store failed: %s", exc)

    n = len(in_domain)

    def hit_at(depth: int) -> float:
        return sum(1 for o in in_domain if o.rank is not None and o.rank <= depth) / n if n else 0.0

    latencies = [o.ms for o in in_domain + off]
    misses = [o for o in in_domain if o.rank is None or o.rank > min(5, args.k)]
    with_section = [o for o in in_domain if o.question.section]
    short = [o for o in in_domain if len(o.question.question.split()) <= SHORT_WORDS]
    long_ = [o for o in in_domain if len(o.question.question.split()) > SHORT_WORDS]

    def hit5(outcomes: list[Outcome]) -> float | None:
        if not outcomes:
            return None
        return round(sum(1 for o in outcomes if o.rank and o.rank <= 5) / len(outcomes), 4)

    return {
        "corpus": job.label,
        "questions_file": str(questions_path),
        "k": args.k,
        "embedder": getattr(embedder, "name", None),
        "settings": {
            "chunk_max_chars": settings.chunk_max_chars,
            "min_coverage": settings.min_coverage,
        },
        "docs": docs,
        "chunks": chunks,
        "index_errors": [list(e) for e in report.errors],
        "index_s": round(index_s, 3),
        "index_chunks_per_s": round(chunks / index_s, 1) if index_s else None,
        "embedder_load_s": round(load_s, 2),
        "questions": n,
        "offtopic_questions": len(off),
        "hit@1": round(hit_at(1), 4),
        "hit@3": round(hit_at(3), 4),
        "hit@5": round(hit_at(5), 4),
        "mrr@k": round(sum(1 / o.rank for o in in_domain if o.rank) / n, 4) if n else 0.0,
        "section@k": round(sum(1 for o in with_section if o.section_rank) / len(with_section), 4)
        if with_section
        else None,
        "hit@5_short": hit5(short),
        "hit@5_long": hit5(long_),
        "short_questions": len(short),
        "search_ms_median": round(statistics.median(latencies), 2) if latencies else 0.0,
        "search_ms_p95": round(percentile(latencies, 95), 2),
        "covered_rate_in_domain": round(sum(o.covered for o in in_domain) / n, 4) if n else 0.0,
        "false_declines": sum(1 for o in in_domain if not o.covered),
        "covered_rate_offtopic": round(sum(o.covered for o in off) / len(off), 4) if off else None,
        "false_accepts": [
            {
                "id": o.question.id,
                "question": o.question.question,
                "coverage": round(o.coverage, 3),
                "similarity": _round(o.similarity),
                "top": o.got[:1],
            }
            for o in off
            if o.covered
        ],
        "declined_in_domain": [
            {
                "id": o.question.id,
                "question": o.question.question,
                "coverage": round(o.coverage, 3),
                "similarity": _round(o.similarity),
                "rank": o.rank,
            }
            for o in in_domain
            if not o.covered
        ],
        "errors": [{"id": o.question.id, "error": o.error} for o in in_domain + off if o.error],
        "misses": [
            {
                "id": o.question.id,
                "question": o.question.question,
                "expected": o.question.expected,
                "expected_section": o.question.section,
                "rank": o.rank,
                "got": [
                    {"source": s, "section": sec, "score": round(score, 4)}
                    for s, sec, score in o.got[:3]
                ],
            }
            for o in misses
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _sim(item: dict[str, Any]) -> str:
    return "" if item.get("similarity") is None else f" sim={item['similarity']:.2f}"


def print_text(r: dict[str, Any]) -> None:
    p = print
    p(
        f"corpus       {r['corpus']}  ({r['docs']} docs, {r['chunks']} chunks, "
        f"indexed in {r['index_s']:.2f}s, embedder: {r['embedder'] or 'none'})"
    )
    if r["embedder"]:
        p(
            f"embedder     loaded in {r['embedder_load_s']:.1f}s, "
            f"indexed {r['index_chunks_per_s']} chunks/s"
        )
    p(
        f"settings     chunk_max_chars={r['settings']['chunk_max_chars']} "
        f"min_coverage={r['settings']['min_coverage']}"
    )
    if r["index_errors"]:
        p(
            f"index errors {len(r['index_errors'])}: "
            + "; ".join(f"{s}: {e}" for s, e in r["index_errors"][:5])
        )
    p(f"questions    {r['questions']} in-domain, {r['offtopic_questions']} off-topic, k={r['k']}")
    p(f"hit@1        {r['hit@1']:.3f}")
    p(f"hit@3        {r['hit@3']:.3f}")
    p(f"hit@5        {r['hit@5']:.3f}")
    p(f"MRR@k        {r['mrr@k']:.3f}")
    if r["section@k"] is not None:
        p(f"section@k    {r['section@k']:.3f}  (right file and right heading in the top k)")
    if r["hit@5_short"] is not None and r["hit@5_long"] is not None:
        p(
            f"hit@5 by len {r['hit@5_short']:.3f} on {r['short_questions']} short "
            f"(<= {SHORT_WORDS} words), {r['hit@5_long']:.3f} on the rest"
        )
    p(f"search ms    median {r['search_ms_median']:.1f}, p95 {r['search_ms_p95']:.1f}")
    p(
        f"covered      in-domain {r['covered_rate_in_domain']:.3f} "
        f"({r['false_declines']} false declines)"
    )
    if r["covered_rate_offtopic"] is not None:
        p(
            f"             off-topic {r['covered_rate_offtopic']:.3f} "
            f"({len(r['false_accepts'])} false accepts)"
        )
    if r["errors"]:
        p(
            f"errors       {len(r['errors'])}: "
            + "; ".join(f"{e['id']}: {e['error']}" for e in r["errors"][:5])
        )
    if r["false_accepts"]:
        p("\nfalse accepts (off-topic questions judged covered):")
        for fa in r["false_accepts"]:
            top = fa["top"][0][0] if fa["top"] else "-"
            p(f"  {fa['id']}  cov={fa['coverage']:.2f}{_sim(fa)}  {fa['question']}  -> {top}")
    if r["declined_in_domain"]:
        p("\nfalse declines (in-domain questions judged not covered):")
        for d in r["declined_in_domain"]:
            p(f"  {d['id']}  cov={d['coverage']:.2f}{_sim(d)} rank={d['rank']}  {d['question']}")
    p(f"\nmisses ({len(r['misses'])}; not in the top {min(5, r['k'])}):")
    for m in r["misses"]:
        p(f"  {m['id']}  {m['question']}")
        p(
            f"      expected {', '.join(m['expected'])}"
            + (f"  [{m['expected_section']}]" if m["expected_section"] else "")
        )
        for g in m["got"]:
            p(f"      got      {g['source']}  [{g['section']}]  {g['score']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.retrieval.eval", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--corpus", default="click", help="name under bench/retrieval/corpus/")
    parser.add_argument("--corpus-dir", help="another corpus root (expected paths relative to it)")
    parser.add_argument("--questions", help="a questions .jsonl (default: questions/NAME.jsonl)")
    parser.add_argument(
        "--offtopic", help="an off-topic .jsonl (default: questions/NAME-offtopic.jsonl)"
    )
    parser.add_argument("--k", type=int, default=5, help="passages asked for per question")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument(
        "--embeddings", action="store_true", help="fuse dense vectors (needs EMBEDDINGS_MODEL)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args, plan(args)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result))
    else:
        print_text(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
