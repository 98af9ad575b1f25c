"""Section-aware chunking: no chunk crosses a heading, each stays under the size limit."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from rag.chunking import chunk_document, merge_tiny_sections, split_text
from rag.loaders import Document, Section, load_document

CORPUS = Path(__file__).parent / "fixtures" / "corpus_small"


def sentences(count: int, start: int = 0) -> str:
    return " ".join(
        f"Sentence number {i} explains how the relay retries a delivery."
        for i in range(start, count)
    )


def test_chunks_carry_document_fields_and_never_span_sections() -> None:
    doc = load_document((CORPUS / "install.md").read_bytes(), "install.md")
    chunks = chunk_document(doc, doc_id="d1", source="/docs/install.md", content_hash="h1")
    assert [c.id for c in chunks] == [f"d1:{i}" for i in range(len(chunks))]
    assert {(c.doc_id, c.title, c.source, c.content_hash) for c in chunks} == {
        ("d1", "Installing Lumen", "/docs/install.md", "h1")
    }
    by_label = {s.label: s.text for s in doc.sections}
    for chunk in chunks:
        assert chunk.text in by_label[chunk.section]


def test_long_sections_split_on_paragraphs_then_sentences_with_overlap() -> None:
    paragraphs = [sentences(6, 0), sentences(12, 6), sentences(30, 12)]
    doc = Document("Retries", [Section(("Delivery",), "\n\n".join(paragraphs))])
    chunks = chunk_document(doc, doc_id="d", source="s", content_hash="h", max_chars=600)
    assert len(chunks) > 3
    assert all(len(c.text) <= 600 for c in chunks)
    assert all(c.section == "Delivery" for c in chunks)
    assert chunks[0].text == paragraphs[0]  # a paragraph that fits stays whole
    for chunk in chunks:  # pieces end on sentence boundaries
        assert chunk.text.endswith(".")
    for previous, chunk in itertools.pairwise(chunks):
        last_sentence = re.split(r"(?<=\.) ", previous.text)[-1]
        if not chunk.text.startswith(paragraphs[1][:30]):
            assert chunk.text.startswith(last_sentence)  # overlap: the previous last sentence
    words = " ".join(c.text for c in chunks)
    for i in range(30):
        assert f"Sentence number {i} " in words


def test_overlong_words_and_sentences_are_cut_hard() -> None:
    text = "word " * 400 + "x" * 700
    pieces = split_text(text, 300, overlap=0)
    assert all(len(p) <= 300 for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_code_blocks_stay_whole_when_they_fit() -> None:
    code = "```python\n" + "\n".join(f"value_{i} = compute({i})" for i in range(20)) + "\n```"
    text = f"{sentences(5)}\n\n{code}\n\n{sentences(9, 5)}"
    pieces = split_text(text, 600, overlap=100)
    holding = [p for p in pieces if "value_0 =" in p]
    assert len(holding) == 1 and "value_19 = compute(19)\n```" in holding[0]
    assert all(len(p) <= 600 for p in pieces)
    after_code = pieces[pieces.index(holding[0]) + 1]
    assert not after_code.startswith("value_")  # no overlap taken out of a code block


def test_tiny_section_is_carried_into_its_subsection() -> None:
    merged = merge_tiny_sections(
        [
            Section((), "Short intro."),
            Section(("Install",), ""),
            Section(("Install", "Linux"), "Use the package. " * 10),
            Section(("Usage",), "Tiny leaf."),
            Section(("Other",), "More text here. " * 10),
        ],
        min_chars=80,
    )
    assert [s.label for s in merged] == ["Install > Linux", "Usage", "Other"]
    assert merged[0].text.startswith("Short intro.\n\nUse the package.")
    assert merged[1].text == "Tiny leaf."  # a tiny leaf stays its own chunk


def test_small_documents_make_one_chunk_per_section() -> None:
    doc = load_document((CORPUS / "troubleshooting.md").read_bytes(), "troubleshooting.md")
    chunks = chunk_document(doc, doc_id="t", source="s", content_hash="h")
    assert [c.section for c in chunks] == [
        "Connection refused when sending webhooks",
        "Deliveries keep failing with timeouts",
        "Disk full",
        "High memory usage",
    ]
    assert chunks[0].text.startswith("Most problems show up in the server log first.")


def test_max_chars_must_be_sensible() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        chunk_document(Document("t", []), doc_id="d", source="s", content_hash="h", max_chars=10)
