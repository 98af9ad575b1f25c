"""Loaders: Markdown, plain text, HTML and PDF become a title and heading-path sections."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
)

from rag.errors import IndexingError
from rag.loaders import Document, load_document, pretty_name

CORPUS = Path(__file__).parent / "fixtures" / "corpus_small"


def sections(doc: Document) -> dict[str, str]:
    return {section.label: section.text for section in doc.sections}


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A real PDF whose pages show the given lines in Helvetica (pypdf writes it)."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for lines in pages:
        page = writer.add_blank_page(width=612, height=792)
        escaped = [
            line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines
        ]
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"] + [f"({line}) Tj T*" for line in escaped]
        stream = DecodedStreamObject()
        stream.set_data(("\n".join([*ops, "ET"])).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {
                NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref}),
                NameObject("/ProcSet"): ArrayObject([NameObject("/PDF"), NameObject("/Text")]),
            }
        )
        page[NameObject("/Rotate")] = NumberObject(0)
    if title:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_heading_paths_and_first_h1_title() -> None:
    doc = load_document((CORPUS / "install.md").read_bytes(), "install.md")
    assert doc.title == "Installing Lumen"
    labels = [section.label for section in doc.sections]
    assert labels[:3] == ["", "Requirements", "Linux > Debian and Ubuntu"]  # "Linux" is empty
    assert "Linux > Tarball" in labels
    assert "Verifying the installation" in labels
    debian = sections(doc)["Linux > Debian and Ubuntu"]
    assert "sudo apt-get update && sudo apt-get install lumen" in debian  # fenced code kept
    assert debian.count("```") == 2


def test_markdown_front_matter_title_and_setext_headings() -> None:
    doc = load_document((CORPUS / "configuration.md").read_bytes(), "configuration.md")
    assert doc.title == "Configuration reference"
    text = "\n".join(section.text for section in doc.sections)
    assert "tags:" not in text and "description:" not in text  # front matter stripped
    labels = [section.label for section in doc.sections]
    assert "Configuration file" in labels
    assert "Configuration file > Environment variables" in labels  # setext H1 then H2
    assert "Listeners and ports" in labels  # ATX H1 after setext headings


def test_markdown_toml_front_matter_and_fallback_title() -> None:
    text = '+++\ntitle = "From TOML"\n+++\n\nBody text.\n'
    assert load_document(text.encode(), "x.md").title == "From TOML"
    untitled = load_document(b"## Only a subsection\n\nSome words here.\n", "02-getting_started.md")
    assert untitled.title == "Getting started"
    assert untitled.sections[-1].label == "Only a subsection"


def test_markdown_headings_inside_code_fences_are_text() -> None:
    text = (
        "# Guide\n\n## Shell\n\n```bash\n# not a heading\necho hi\n```\n\n"
        "~~~\n## still code\n~~~\n\nAfter the code.\n"
    )
    doc = load_document(text.encode(), "guide.md")
    assert [s.label for s in doc.sections] == ["Shell"]
    body = doc.sections[0].text
    assert "# not a heading" in body and "## still code" in body and "After the code." in body


def test_markdown_setext_needs_a_paragraph_line() -> None:
    text = (
        "# Title\n\nIntro paragraph.\n\n---\n\n- item\n---\n\nReal Heading\n------------\n\nBody.\n"
    )
    doc = load_document(text.encode(), "x.md")
    labels = [s.label for s in doc.sections]
    assert labels == ["", "Real Heading"]  # a thematic break and a list item are no headings
    assert "Intro paragraph." in doc.sections[0].text


def test_markdown_inline_markup_and_myst_roles_become_plain_text() -> None:
    text = (
        "(label)=\n\n# Title\n\nSee the [install guide](install.md) and ![a diagram](d.png).\n"
        "Use {func}`click.option` or {ref}`positional arguments <arguments>`;\n"
        "keep max_body_bytes.\n"
        "<!-- a comment -->**Bold** and `code`.\n\n```{contents}\n:depth: 2\n```\n"
    )
    body = load_document(text.encode(), "x.md").sections[0].text
    assert "install guide" in body and "install.md" not in body
    assert "a diagram" in body
    assert "click.option" in body and "positional arguments" in body
    assert "{func}" not in body and "<arguments>" not in body and "(label)=" not in body
    assert "max_body_bytes" in body  # snake_case is no emphasis
    assert "Bold and code." in body
    assert "comment" not in body and ":depth:" not in body


# --- plain text -------------------------------------------------------------------------------


def test_text_title_from_a_short_first_line() -> None:
    doc = load_document((CORPUS / "upgrading.txt").read_bytes(), "upgrading.txt")
    assert doc.title == "Upgrading Lumen"
    assert doc.sections[0].text.startswith("Lumen follows semantic versioning.")
    plain = load_document(b"Just one sentence of text.\n", "my_notes.txt")
    assert plain.title == "My notes"
    assert plain.sections[0].text == "Just one sentence of text."


def test_text_decodes_windows_1252_and_rejects_binary() -> None:
    doc = load_document("Caf\u00e9 menu\n\nCr\u00e8me br\u00fbl\u00e9e.".encode("cp1252"), "m.txt")
    assert "Crème brûlée." in doc.sections[0].text
    with pytest.raises(IndexingError, match="binary"):
        load_document(b"\x00\x01\x02binary", "blob.txt")


# --- HTML -------------------------------------------------------------------------------------


def test_html_keeps_main_text_and_drops_page_furniture() -> None:
    doc = load_document((CORPUS / "tls.html").read_bytes(), "tls.html")
    assert doc.title == "Enabling TLS"
    text = "\n".join(s.text for s in doc.sections)
    for furniture in ("Search the documentation", "Privacy", "analytics", "font-family", "Backups"):
        assert furniture not in text
    by_label = sections(doc)
    assert "PEM files" in by_label["Certificates"]
    assert 'cert_file = "/etc/lumen/tls/fullchain.pem"' in by_label["Certificates"]
    assert "SIGHUP" in by_label["Mutual TLS for consumers > Rotating certificates"]
    assert by_label[""].startswith("By default Lumen serves plain HTTP.")


def test_html_title_falls_back_to_the_title_tag() -> None:
    html = (
        b"<html><head><title>Page Title</title></head><body><div role='navigation'>Menu</div>"
        b"<article><h2>Part</h2><p>First <b>bold</b> words.</p><ul><li>one</li><li>two</li></ul>"
        b"</article></body></html>"
    )
    doc = load_document(html, "page.htm")
    assert doc.title == "Page Title"
    part = sections(doc)["Part"]
    assert "First bold words." in part and "one" in part and "two" in part
    assert "Menu" not in part


# --- PDF --------------------------------------------------------------------------------------


def test_pdf_pages_become_sections_with_the_metadata_title() -> None:
    data = make_pdf(
        [["Lumen operations handbook", "Restart the relay with systemctl."], ["Page two text."]],
        title="Operations Handbook",
    )
    doc = load_document(data, "handbook.pdf")
    assert doc.title == "Operations Handbook"
    assert [s.label for s in doc.sections] == ["Page 1", "Page 2"]
    assert "Restart the relay with systemctl." in doc.sections[0].text
    assert "Page two text." in doc.sections[1].text


def test_pdf_title_from_the_first_line_without_metadata() -> None:
    doc = load_document(make_pdf([["Release checklist", "Tag the commit."]]), "c.pdf")
    assert doc.title == "Release checklist"


def test_broken_and_unsupported_files_raise_indexing_errors() -> None:
    with pytest.raises(IndexingError, match="pdf"):
        load_document(b"%PDF-1.4 this is not really a pdf", "broken.pdf")
    with pytest.raises(IndexingError, match="unsupported"):
        load_document(b"data", "image.png")
    with pytest.raises(IndexingError, match="no text"):
        load_document(b"   \n\n", "empty.md")


def test_pretty_name() -> None:
    assert pretty_name("01-getting_started.md") == "Getting started"
    assert pretty_name("faq.html") == "Faq"
    assert pretty_name("2024.txt") == "2024"
