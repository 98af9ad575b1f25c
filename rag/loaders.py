"""Document loaders: Markdown, plain text, HTML and PDF bytes become a titled list of sections."""

from __future__ import annotations

import io
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from bs4 import Tag

from rag.errors import IndexingError
from rag.text import normalize_space

SUPPORTED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm", ".pdf"})


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path (empty path: text before any heading)."""

    path: tuple[str, ...]
    text: str

    @property
    def label(self) -> str:
        return " > ".join(self.path)


@dataclass(frozen=True)
class Document:
    """A loaded document: its title and its sections in reading order."""

    title: str
    sections: list[Section]


def pretty_name(name: str) -> str:
    """A title made from a file name: `01-getting_started.md` -> `Getting started`."""
    stem = PurePath(name).stem if "." in name else name
    stem = re.sub(r"^[\d\s._-]+(?=[^\d\s._-])", "", stem)
    words = re.sub(r"[-_.\s]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else name


def decode_text(data: bytes) -> str:
    """Decode text bytes: UTF-8 (with or without BOM), else Windows-1252."""
    if b"\x00" in data[:4096]:
        raise IndexingError("looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def load_document(data: bytes, name: str) -> Document:
    """Load `data`, read from a file called `name`; the suffix picks the format."""
    suffix = PurePath(name).suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise IndexingError(f"unsupported file type {suffix or '(none)'!r}")
    try:
        doc = loader(data, pretty_name(PurePath(name).name))
    except IndexingError:
        raise
    except Exception as exc:  # parser libraries raise anything on broken input
        raise IndexingError(f"cannot parse {suffix[1:]}: {exc}") from exc
    if not any(section.text.strip() for section in doc.sections):
        raise IndexingError("no text found")
    return doc


# --- plain text -------------------------------------------------------------------------------


def load_text(data: bytes, fallback_title: str) -> Document:
    """Plain text; a short first line standing alone (no final stop) is the title."""
    text = normalize_space(decode_text(data))
    first, _, rest = text.partition("\n\n")
    if rest.strip() and "\n" not in first and len(first) <= 80 and first[-1:] not in ".:;,!?":
        return Document(first.strip(), [Section((), rest.strip())])
    return Document(fallback_title, [Section((), text)])


# --- Markdown ---------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>]|\d+[.)]|\||#)(?:\s|$)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# MyST (Sphinx Markdown): {role}`text <target>`, `(label)=` anchors, navigation directives.
_MYST_ROLE = re.compile(r"\{[\w:.-]+\}`([^`<]*?)\s*(?:<[^`>]*>)?`")
_MYST_LABEL = re.compile(r"^\(\S+\)=\s*$")
_NAV_DIRECTIVE = re.compile(r"^ {0,3}(`{3,}|~{3,})\{(?:contents|toctree|currentmodule|include)\}")
_TAG = re.compile(
    r"</?(?:a|abbr|b|blockquote|br|center|code|del|details|div|em|figcaption|figure|font|h[1-6]"
    r"|hr|i|img|ins|kbd|li|mark|ol|p|picture|pre|s|small|source|span|strong|sub|summary|sup"
    r"|table|tbody|td|th|thead|tr|u|ul|video)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"(\*{1,3}|`+|(?<!\w)_{1,3})(?=\S)(.+?)(?<=\S)\1(?!\w)")


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Split YAML (`---`) or TOML (`+++`) front matter off the top of a Markdown file."""
    match = re.match(
        r"\A(---|\+\+\+)[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.|\+\+\+)[ \t]*(?:\r?\n|\Z)",
        text,
        re.DOTALL,
    )
    if not match:
        return {}, text
    body = text[match.end() :]
    meta: Any = None
    try:
        if match.group(1) == "+++":
            meta = tomllib.loads(match.group(2))
        else:
            import yaml

            meta = yaml.safe_load(match.group(2))
    except Exception:  # malformed front matter: drop it, keep the document
        meta = None
    return (meta if isinstance(meta, dict) else {}), body


def _inline(text: str) -> str:
    """Plain text of inline Markdown: links and images keep their words, markers go."""
    text = _MYST_ROLE.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    return _EMPHASIS.sub(r"\2", text).strip()


def _clean_lines(lines: list[str]) -> str:
    out: list[str] = []
    fence: str | None = None
    for line in lines:
        opener = _FENCE.match(line)
        if fence is None and opener:
            fence = opener.group(1)
            out.append(line.rstrip())
        elif fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = None
            out.append(line.rstrip())
        else:
            out.append(_inline(line) if line.strip() else "")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out))
    return text.strip("\n")


def parse_markdown(text: str, fallback_title: str) -> Document:
    """Parse Markdown into sections along its ATX and setext headings."""
    meta, body = _front_matter(text.replace("\r\n", "\n").replace("\r", "\n"))
    body = _COMMENT.sub("", body)
    headings: list[tuple[int, str, list[str]]] = [(0, "", [])]
    fence: str | None = None
    skip: str | None = None
    for line in body.split("\n"):
        opener = _FENCE.match(line)
        current = headings[-1][2]
        if skip is not None:
            if opener and opener.group(1)[0] == skip[0] and len(opener.group(1)) >= len(skip):
                skip = None
            continue
        nav = _NAV_DIRECTIVE.match(line) if fence is None else None
        if nav:
            skip = nav.group(1)
            continue
        if fence is None and _MYST_LABEL.match(line):
            continue
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = None
            current.append(line)
            continue
        if opener:
            fence = opener.group(1)
            current.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            headings.append((len(atx.group(1)), _inline(atx.group(2) or ""), []))
            continue
        setext = _SETEXT.match(line)
        if (
            setext
            and current
            and current[-1].strip()
            and not _NOT_PARAGRAPH.match(current[-1])
            and (len(current) == 1 or not current[-2].strip())
        ):
            title_line = current.pop()
            headings.append((1 if setext.group(1)[0] == "=" else 2, _inline(title_line), []))
            continue
        current.append(line)

    title = str(meta.get("title") or "").strip()
    if not title:
        title = next((h for level, h, _ in headings if level == 1 and h), fallback_title)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    for level, heading, lines in headings:
        path = _heading_path(stack, level, heading, title)
        sections.append(Section(path, _clean_lines(lines)))
    return Document(title, _merge_same_path(sections))


def _merge_same_path(sections: list[Section]) -> list[Section]:
    """Drop empty sections; join neighbours with the same path (e.g. under the title)."""
    merged: list[Section] = []
    for section in sections:
        if not section.text.strip():
            continue
        if merged and merged[-1].path == section.path:
            text = "\n\n".join(t for t in (merged[-1].text, section.text) if t)
            merged[-1] = Section(section.path, text)
        else:
            merged.append(section)
    return merged


def _heading_path(
    stack: list[tuple[int, str]], level: int, heading: str, title: str
) -> tuple[str, ...]:
    """Push a heading of `level` (0: none) on the open-heading `stack`; the section's path,
    without a leading heading that repeats the document title."""
    if level:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading))
    path = tuple(h for _, h in stack if h)
    if path and path[0].casefold() == title.casefold():
        path = path[1:]
    return path


def load_markdown(data: bytes, fallback_title: str) -> Document:
    return parse_markdown(decode_text(data), fallback_title)


# --- HTML -------------------------------------------------------------------------------------

_DROP_TAGS = (
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
    "svg", "iframe", "button", "select", "head",
)  # fmt: skip
_BLOCK_TAGS = (
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "td", "th", "blockquote",
    "section", "article", "main", "figure", "figcaption", "br", "hr", "details", "summary",
)  # fmt: skip
_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_CHROME_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary")
_MARK = "\ue001"


def load_html(data: bytes, fallback_title: str) -> Document:
    """Main text of an HTML page; navigation, headers, footers, scripts and styles dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(_is_chrome):
        tag.decompose()
    root = soup.find("main") or soup.find(_is_main) or soup.find("article")
    root = root or soup.body or soup
    headings: list[tuple[int, str]] = []
    for tag in root.find_all(_HEADING_TAGS):
        headings.append((int(tag.name[1]), tag.get_text(" ", strip=True)))
        tag.replace_with(f"\n{_MARK}{len(headings) - 1}{_MARK}\n")
    for tag in root.find_all("pre"):
        tag.replace_with("\n\n" + tag.get_text() + "\n\n")
    for tag in root.find_all(_BLOCK_TAGS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    parts = re.split(f"{_MARK}(\\d+){_MARK}", root.get_text())
    first_h1 = next((text for level, text in headings if level == 1 and text), "")
    title = first_h1 or page_title or fallback_title
    sections: list[Section] = [Section((), _html_text(parts[0]))]
    stack: list[tuple[int, str]] = []
    for index in range(1, len(parts), 2):
        level, heading = headings[int(parts[index])]
        path = _heading_path(stack, level, heading, title)
        sections.append(Section(path, _html_text(parts[index + 1])))
    return Document(title, _merge_same_path(sections))


def _is_chrome(tag: Tag) -> bool:
    """Page furniture marked up by ARIA role rather than by tag name."""
    return tag.get("role") in _CHROME_ROLES or tag.get("aria-hidden") == "true"


def _is_main(tag: Tag) -> bool:
    return tag.get("role") == "main"


def _html_text(text: str) -> str:
    paragraphs = re.split(r"\n[ \t]*\n", text)
    return "\n\n".join(p for p in (normalize_space(p) for p in paragraphs) if p)


# --- PDF --------------------------------------------------------------------------------------


def load_pdf(data: bytes, fallback_title: str) -> Document:
    """Text of each page of a PDF as its own section; title from metadata or the first line."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        raise IndexingError("the PDF is encrypted")
    sections: list[Section] = []
    for number, page in enumerate(reader.pages, start=1):
        text = normalize_space(page.extract_text() or "")
        if text:
            sections.append(Section((f"Page {number}",), text))
    meta_title = reader.metadata.title if reader.metadata else None
    title = str(meta_title).strip() if meta_title else ""
    if not title and sections:
        first_line = sections[0].text.split("\n", 1)[0].strip()
        title = first_line if 0 < len(first_line) <= 120 else ""
    return Document(title or fallback_title, sections)


_LOADERS: dict[str, Callable[[bytes, str], Document]] = {
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".txt": load_text,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
}
