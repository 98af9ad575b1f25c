"""Web pages and sitemaps served by a local site: indexed, re-checked with conditional
requests, failures kept, pages no longer listed removed, limits enforced."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from rag.index_store import IndexStore
from rag.indexer import SourceFilter, doc_id_for, index_sources
from rag.text import fts_phrase
from rag.web_sources import WebOptions, parse_sitemap
from tests.fakes.website import FakeSite

OPTIONS = WebOptions(timeout=5.0, max_bytes=100_000, user_agent="SuaraTest/1.0")


@pytest.fixture
async def site() -> AsyncIterator[FakeSite]:
    fake = await FakeSite().start()
    fake.html("/docs/billing.html", "Billing", "<h2>Invoices</h2><p>Invoices are sent monthly.</p>")
    fake.html("/docs/refunds", "Refunds", "<p>Refunds take five business days.</p>")
    fake.html("/docs/shipping.html", "Shipping", "<p>Parcels ship from Rotterdam.</p>")
    fake.pages["/docs/notes.txt"] = (b"Support notes\n\nThe helpdesk closes at noon.", "text/plain")
    fake.sitemap(
        "/docs/sitemap-pages.xml",
        ["/docs/billing.html", "/docs/refunds", "/docs/notes.txt", "/docs/billing.html#top"],
    )
    fake.sitemap("/docs/sitemap.xml", ["/docs/sitemap-pages.xml"], index=True)
    yield fake
    await fake.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IndexStore]:
    index = IndexStore(tmp_path / "index.sqlite3")
    yield index
    index.close()


def sources_with(store: IndexStore, words: str) -> set[str]:
    with store.snapshot():
        rows = store.match(fts_phrase(words), limit=50, weights=(1, 1, 1, 1))
        return {chunk.source for chunk in store.chunks(r for r, _ in rows).values()}


async def test_pages_and_a_sitemap_index_are_indexed_then_rechecked_conditionally(
    site: FakeSite, store: IndexStore
) -> None:
    sources = [site.url("/docs/sitemap.xml"), site.url("/docs/shipping.html")]
    first = await index_sources(sources, store, web=OPTIONS)
    assert first.errors == []
    assert (first.added, first.changed, first.removed, first.unchanged) == (4, 0, 0, 0)
    assert sources_with(store, "sent monthly") == {site.url("/docs/billing.html")}
    assert sources_with(store, "helpdesk closes") == {site.url("/docs/notes.txt")}
    assert sources_with(store, "Rotterdam") == {site.url("/docs/shipping.html")}
    assert sources_with(store, "navigation menu entry") == set()  # the page's <nav> is dropped
    assert sources_with(store, "copyright footer") == set()
    billing = store.doc_chunks(doc_id_for(site.url("/docs/billing.html")))
    assert {(c.title, c.section) for c in billing} == {("Billing", "Invoices")}
    assert len({c.content_hash for c in billing}) == 1
    assert all(r.headers["User-Agent"] == "SuaraTest/1.0" for r in site.requests)
    assert len(site.served("/docs/billing.html")) == 1  # listed twice (#top), fetched once

    second = await index_sources(sources, store, web=OPTIONS)
    assert (second.added, second.changed, second.removed, second.unchanged) == (0, 0, 0, 4)
    revisit = site.served("/docs/refunds")[-1]
    assert revisit.status == 304 and revisit.headers["If-None-Match"].startswith('"')
    assert revisit.headers["If-Modified-Since"]

    site.html("/docs/refunds", "Refunds", "<p>Refunds now take two business days.</p>")
    site.sitemap("/docs/sitemap-pages.xml", ["/docs/billing.html", "/docs/refunds"])
    third = await index_sources(sources, store, web=OPTIONS)
    assert (third.changed, third.removed, third.unchanged) == (1, 1, 2)  # notes.txt unlisted
    assert sources_with(store, "two business days") == {site.url("/docs/refunds")}
    assert sources_with(store, "five business days") == set()
    assert sources_with(store, "helpdesk") == set()


async def test_a_server_without_validators_costs_a_hash_check(
    site: FakeSite, store: IndexStore
) -> None:
    site.validators = False
    sources = [site.url("/docs/sitemap-pages.xml")]
    await index_sources(sources, store, web=OPTIONS)
    generation = store.generation()
    again = await index_sources(sources, store, web=OPTIONS)
    assert again.unchanged == 3 and again.chunks == 0
    assert store.generation() == generation  # nothing was rewritten
    assert "If-None-Match" not in site.served("/docs/refunds")[-1].headers


async def test_failing_pages_keep_their_previous_version_and_are_errors_of_the_run(
    site: FakeSite, store: IndexStore
) -> None:
    sources = [site.url("/docs/sitemap.xml")]
    await index_sources(sources, store, web=OPTIONS)
    site.failing["/docs/refunds"] = 500
    site.pages["/docs/billing.html"] = (b"<html>" + b"x" * 200_000 + b"</html>", "text/html")
    site.slow.add("/docs/notes.txt")
    report = await index_sources(sources, store, web=WebOptions(timeout=0.3, max_bytes=100_000))
    errors = dict(report.errors)
    assert "HTTP 500" in errors[site.url("/docs/refunds")]
    assert "100000 bytes" in errors[site.url("/docs/billing.html")]
    assert "0.3 s" in errors[site.url("/docs/notes.txt")]
    assert report.removed == 0
    assert sources_with(store, "five business days") == {site.url("/docs/refunds")}
    assert sources_with(store, "sent monthly") == {site.url("/docs/billing.html")}

    site.failing["/docs/sitemap-pages.xml"] = 503  # the sitemap is down: keep its pages
    down = await index_sources(sources, store, web=OPTIONS)
    assert [source for source, _ in down.errors] == [site.url("/docs/sitemap-pages.xml")]
    assert down.removed == 0 and store.document_count() == 3


async def test_include_and_exclude_globs_apply_to_urls_and_files(
    site: FakeSite, store: IndexStore, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    (folder / "drafts").mkdir(parents=True)
    (folder / "guide.md").write_text("# Guide\n\nThe guide explains tariffs.\n")
    (folder / "drafts" / "plan.md").write_text("# Plan\n\nA draft about tariffs.\n")
    (folder / "notes.txt").write_text("Notes\n\nPlain notes about tariffs.\n")
    sources = [str(folder), site.url("/docs/sitemap.xml")]
    only = SourceFilter(include=("*.md", "*.html"), exclude=("drafts/*", "*/billing.html"))
    report = await index_sources(sources, store, filters=only, web=OPTIONS)
    assert report.errors == []
    assert set(store.documents()) == {str(folder / "guide.md")}

    widened = SourceFilter(exclude=("drafts/*",))
    report = await index_sources(sources, store, filters=widened, web=OPTIONS)
    assert report.added == 4  # notes.txt, and the three pages of the sitemap
    assert str(folder / "drafts" / "plan.md") not in store.documents()
    report = await index_sources(sources, store, filters=only, web=OPTIONS)
    assert report.removed == 4  # documents the filters now leave out are removed


def test_sitemaps_may_be_gzipped_or_plain_lists_and_are_size_limited() -> None:
    xml = (
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc> https://example.org/a </loc></url><url><loc>mailto:x@y</loc></url></urlset>"
    )
    assert parse_sitemap(gzip.compress(xml), 10_000) == (["https://example.org/a"], [])
    plain = b"https://example.org/a\n\nhttps://example.org/b\n# comment\n"
    assert parse_sitemap(plain, 10_000) == (["https://example.org/a", "https://example.org/b"], [])
    with pytest.raises(Exception, match="more than the 1000 bytes"):
        parse_sitemap(gzip.compress(b"<urlset>" + b" " * 5000 + b"</urlset>"), 1000)
    with pytest.raises(Exception, match="not a sitemap"):
        parse_sitemap(b"<html><body>hello</body></html>", 10_000)
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><urlset><url><loc>&a;</loc></url></urlset>'
    with pytest.raises(Exception, match="valid sitemap"):
        parse_sitemap(bomb, 10_000)
