"""Indexing throughput on a generated corpus, and the cost of re-indexing it unchanged.

Run: `.venv/bin/python -m bench.indexing [--docs 5000] [--seed 7]`; exits 1 when the unchanged
re-index takes more than 5% of the full index's time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from rag.index_store import IndexStore
from rag.indexer import index_sources

MAX_RATIO = 0.05
WORDS = (
    "account backup billing cache cluster config deploy disk error export gateway index invoice"
    " key latency limit log metric node password policy quota region replica restore role"
    " secret server session shard snapshot storage token upgrade user volume webhook worker"
).split()


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 18))
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(2, 6)))


def write_corpus(folder: Path, docs: int, seed: int) -> int:
    """`docs` documents (Markdown mostly, some text and HTML) in nested folders; returns bytes."""
    rng = random.Random(seed)
    total = 0
    for number in range(docs):
        sub = folder / f"area-{number % 20:02d}" / f"topic-{number % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        sections = [
            (f"Section {s}", [paragraph(rng) for _ in range(rng.randint(1, 4))])
            for s in range(rng.randint(1, 5))
        ]
        kind = number % 10
        if kind < 8:
            body = f"# Document {number}\n\n{paragraph(rng)}\n\n" + "".join(
                f"## {title}\n\n" + "\n\n".join(paras) + "\n\n" for title, paras in sections
            )
            path = sub / f"doc-{number}.md"
        elif kind == 8:
            body = f"Document {number}\n\n" + "\n\n".join(p for _, ps in sections for p in ps)
            path = sub / f"doc-{number}.txt"
        else:
            body = (
                f"<html><head><title>Document {number}</title></head><body><nav>Menu</nav>"
                f"<main><h1>Document {number}</h1>"
                + "".join(
                    f"<h2>{title}</h2>" + "".join(f"<p>{p}</p>" for p in paras)
                    for title, paras in sections
                )
                + "</main></body></html>"
            )
            path = sub / f"doc-{number}.html"
        path.write_text(body)
        total += len(body)
    return total


async def main(docs: int, seed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        size = write_corpus(corpus, docs, seed)
        store = IndexStore(Path(tmp) / "index.sqlite3")
        try:
            started = time.perf_counter()
            full = await index_sources([str(corpus)], store)
            full_s = time.perf_counter() - started
            started = time.perf_counter()
            again = await index_sources([str(corpus)], store)
            again_s = time.perf_counter() - started
        finally:
            store.close()
    assert full.errors == [] and full.added == docs, full.errors[:3]
    assert again.unchanged == docs and again.chunks == 0
    ratio = again_s / full_s
    print(f"corpus: {docs} documents, {size / 1e6:.1f} MB, {full.chunks} chunks")
    print(
        f"full index: {full_s:.2f} s, {docs / full_s:.0f} documents/s,"
        f" {full.chunks / full_s:.0f} chunks/s"
    )
    print(f"unchanged re-index: {again_s:.3f} s, {docs / again_s:.0f} documents/s")
    print(f"ratio: {ratio:.1%} of the full index (limit {MAX_RATIO:.0%})")
    return 0 if ratio <= MAX_RATIO else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.docs, args.seed)))
