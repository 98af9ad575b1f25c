"""Settings: wrong values are named at start-up, and .env.example documents every setting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.settings import PROJECT_DIR, Settings, load_settings


def test_wrong_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_PROVIDER", "carrier-pigeon")
    with pytest.raises(SettingsError, match="STT_PROVIDER"):
        load_settings()


def test_missing_dependent_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_PROVIDER", "prosa")
    monkeypatch.delenv("PROSA_API_KEY", raising=False)
    with pytest.raises(SettingsError, match="PROSA_API_KEY"):
        load_settings()


def test_prosa_needs_its_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_PROVIDER", "prosa")
    monkeypatch.setenv("PROSA_API_KEY", "k")
    with pytest.raises(SettingsError, match="PROSA_URL"):
        load_settings(_env_file=None)


def test_port_out_of_range_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "70000")
    with pytest.raises(SettingsError, match="PORT"):
        load_settings()


def test_knowledge_sources_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KNOWLEDGE_SOURCES", " docs , handbook/**/*.md ,")
    assert load_settings().sources == ["docs", "handbook/**/*.md"]


def test_default_knowledge_base_is_the_projects_docs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KNOWLEDGE_SOURCES", raising=False)
    assert load_settings(_env_file=None).sources == [str(PROJECT_DIR / "docs")]


def test_env_example_documents_every_setting() -> None:
    text = (PROJECT_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected - documented == set()
    assert documented - expected == set()


def test_cli_refuses_a_wrong_setting_with_its_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "index"],
        cwd=PROJECT_DIR,
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "MAX_AUDIO_SECONDS": "-5"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "MAX_AUDIO_SECONDS" in result.stderr


def test_pinecone_needs_an_embeddings_model_and_an_index() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, pinecone_api_key="pc-key")
    message = str(caught.value)
    assert "EMBEDDINGS_MODEL (required by PINECONE_API_KEY)" in message
    assert "PINECONE_INDEX or PINECONE_HOST (required by PINECONE_API_KEY)" in message
    with pytest.raises(SettingsError, match=r"PINECONE_API_KEY \(required by PINECONE_INDEX\)"):
        load_settings(_env_file=None, pinecone_index="kb")
    settings = load_settings(
        _env_file=None,
        pinecone_api_key="pc-key",
        pinecone_index="kb",
        embeddings_model="text-embedding-3-small",
        openai_api_key="sk-key",
    )
    assert (settings.pinecone_cloud, settings.pinecone_region) == ("aws", "us-east-1")
    assert settings.pinecone_namespace == "" and settings.pinecone_host is None
