"""The doctor's checks, in the order they are shown: settings first (run alone), then the
machine (DATA_DIR, ffmpeg, local models, knowledge, index), then each configured service."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from bot.doctor.core import Check, CheckFailed, Result, blocking
from bot.errors import SettingsError
from bot.settings import Settings, load_settings
from handlers import probes as channel
from rag import probes as knowledge
from rag.embeddings_local import is_local
from speech import probes as speech

MIN_FREE_BYTES = 300_000_000  # the assembled Whisper model alone takes 150 MB


def check_settings() -> tuple[Settings | None, Result]:
    """Load the settings as `serve` does; a SettingsError names the settings to correct."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        known = {name.upper() for name in Settings.model_fields}
        named = [
            n for n in dict.fromkeys(re.findall(r"\b[A-Z][A-Z0-9_]+\b", str(exc))) if n in known
        ]
        target = ", ".join(named) if named else "the setting named above"
        fix = f"correct {target} in the environment or .env (each is described in .env.example)"
        return None, Result("settings", "fail", str(exc), fix)
    env_file = Settings.model_config.get("env_file")
    source = "environment and .env" if env_file and Path(str(env_file)).is_file() else "environment"
    answers = settings.llm_model if settings.openai_api_key else "extractive"
    return settings, Result(
        "settings",
        "ok",
        f"valid (from the {source}); STT {settings.stt_provider}, TTS {settings.tts_provider},"
        f" answers {answers}",
    )


def data_dir(settings: Settings) -> str:
    """DATA_DIR exists (created if not), takes a file, and has room."""
    folder = settings.data_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-") as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as exc:
        raise CheckFailed(
            f"DATA_DIR {folder} is not writable: {exc.strerror or exc}",
            "give the user running Suara write access to DATA_DIR (on Fly.io: mount the volume"
            " there)",
        ) from exc
    usage = shutil.disk_usage(folder)
    detail = (
        f"{folder.resolve()} writable, {usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB"
    )
    if usage.free < MIN_FREE_BYTES:
        raise CheckFailed(
            f"only {usage.free / 1e6:.0f} MB free in DATA_DIR {folder}",
            "free some space or grow the volume (`fly volumes extend`)",
        )
    return detail


async def ffmpeg(settings: Settings, seconds: float) -> str:
    return await speech.ffmpeg_version(settings.ffmpeg_binary, seconds)


def _unless(condition: bool, reason: str) -> str | None:
    return None if condition else reason


def _embeddings_skip(settings: Settings) -> str | None:
    if not settings.embeddings_model:
        return "not configured (EMBEDDINGS_MODEL unset: BM25 only)"
    return "runs locally (see local-embeddings)" if is_local(settings.embeddings_model) else None


CHECKS: tuple[Check, ...] = (
    Check("data-dir", blocking(data_dir)),
    Check("ffmpeg", ffmpeg),
    Check(
        "whisper",
        blocking(speech.whisper_files),
        lambda s: _unless(s.stt_provider == "whisper", f"not used (STT_PROVIDER={s.stt_provider})"),
    ),
    Check(
        "piper",
        blocking(speech.piper_files),
        lambda s: _unless(s.tts_provider == "piper", f"not used (TTS_PROVIDER={s.tts_provider})"),
    ),
    Check(
        "local-embeddings",
        blocking(knowledge.local_embeddings),
        lambda s: _unless(is_local(s.embeddings_model), "not used (EMBEDDINGS_MODEL is not local)"),
    ),
    Check("knowledge", blocking(knowledge.knowledge_sources)),
    Check("index", blocking(knowledge.index_state)),
    Check(
        "llm",
        knowledge.chat_models,
        lambda s: _unless(s.openai_api_key is not None, "not configured (extractive answers)"),
    ),
    Check("embeddings", knowledge.embeddings_api, _embeddings_skip),
    Check(
        "openai-speech",
        speech.openai_speech,
        lambda s: _unless("openai" in (s.stt_provider, s.tts_provider), "not configured"),
    ),
    Check(
        "prosa",
        speech.prosa_handshake,
        lambda s: _unless(s.stt_provider == "prosa", "not configured (STT_PROVIDER is not prosa)"),
    ),
    Check(
        "emotion-service",
        speech.emotion_service,
        lambda s: _unless(bool(s.emotion_api_url), "not configured (local emotion detector)"),
    ),
    Check(
        "pinecone",
        knowledge.pinecone_index,
        lambda s: _unless(s.pinecone_api_key is not None, "not configured (vectors in SQLite)"),
    ),
    Check(
        "telegram",
        channel.telegram,
        lambda s: _unless(s.telegram_bot_token is not None, "not configured (TELEGRAM_BOT_TOKEN)"),
    ),
    Check(
        "twilio",
        channel.twilio,
        lambda s: _unless(s.twilio_account_sid is not None, "not configured (TWILIO_ACCOUNT_SID)"),
    ),
    # Postgres and Redis join when they become settings.
)
