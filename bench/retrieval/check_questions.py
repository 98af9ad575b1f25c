"""Lint a question set: files exist, sections exist, and questions do not copy the docs.

    .venv/bin/python -m bench.retrieval.check_questions [--corpus NAME]

A question "copies" its passage when it shares a run of three or more consecutive content
words (stop words dropped, lower-cased, light stemming) with one of its expected documents.
Identifiers such as option names are exempt from nothing: rephrase around them instead.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

STOP = set(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "else",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "onto",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "done",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "not",
        "no",
        "nor",
        "so",
        "than",
        "too",
        "very",
        "just",
        "only",
        "also",
        "any",
        "all",
        "each",
        "every",
        "some",
        "such",
        "own",
        "same",
        "other",
        "more",
        "most",
        "much",
        "many",
        "few",
        "both",
        "either",
        "neither",
        "one",
        "two",
        "get",
        "gets",
        "got",
        "use",
        "used",
        "using",
        "make",
        "makes",
        "made",
        "let",
        "lets",
        "want",
        "wants",
        "need",
        "needs",
        "like",
        "instead",
        "about",
        "up",
        "out",
        "over",
        "under",
        "again",
        "once",
        "off",
        "still",
        "even",
        "s",
        "t",
        "don",
        "doesn",
        "isn",
        "aren",
        "won",
        "can't",
        "i'm",
    ]
)


def words(text: str) -> list[str]:
    toks = re.findall(r"[a-z0-9_]+", text.lower())
    out = []
    for tok in toks:
        if tok in STOP or len(tok) < 2:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(tok) > len(suffix) + 3 and tok.endswith(suffix):
                tok = tok[: -len(suffix)]
                break
        out.append(tok)
    return out


def ngrams(seq: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)}


def headings(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            found.add(re.sub(r"\{[a-z-]+\}|[`*]", "", m.group(1)).strip().lower())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="click")
    parser.add_argument("-n", type=int, default=3, help="run length that counts as copying")
    args = parser.parse_args(argv)
    root = HERE / "corpus" / args.corpus
    problems = 0
    seen_ids: set[str] = set()
    lines = (HERE / "questions" / f"{args.corpus}.jsonl").read_text().splitlines()
    for line in lines:
        item = json.loads(line)
        qid = item["id"]
        if qid in seen_ids:
            print(f"{qid}: duplicate id")
            problems += 1
        seen_ids.add(qid)
        qgrams = ngrams(words(item["question"]), args.n)
        section = item.get("expected_section")
        section_found = section is None
        for rel in item["expected_sources"]:
            path = root / rel
            if not path.is_file():
                print(f"{qid}: missing file {rel}")
                problems += 1
                continue
            text = path.read_text(encoding="utf-8")
            if section is not None and re.sub(r"[`*]", "", section).strip().lower() in headings(
                text
            ):
                section_found = True
            copied = qgrams & ngrams(words(text), args.n)
            if copied:
                runs = sorted(" ".join(g) for g in copied)
                print(f"{qid}: copies {runs} from {rel}: {item['question']}")
                problems += 1
        if not section_found:
            print(f"{qid}: section {section!r} not a heading of {item['expected_sources']}")
            problems += 1
    offtopic = HERE / "questions" / f"{args.corpus}-offtopic.jsonl"
    n_off = len(offtopic.read_text().splitlines()) if offtopic.is_file() else 0
    print(f"{len(lines)} questions, {n_off} off-topic, {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
