"""Typed settings, read from the environment and `.env`; every one is documented in `.env.example`.

A wrong or missing setting fails at start-up with a `SettingsError` that names it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import SettingsError
from rag.embeddings_local import INSTALL_HINT, REQUIRED_MODULES, is_local, local_folder

SttProvider = Literal["whisper", "openai", "prosa"]
TtsProvider = Literal["piper", "openai", "none"]
EmotionProvider = Literal["local", "http"]

PROJECT_DIR = Path(__file__).resolve().parent.parent


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting the bot reads; the environment variable is the field name in upper case."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    # --- state and knowledge -------------------------------------------------------------
    data_dir: Path = Field(Path("./data"), description="Folder that holds all state.")
    knowledge_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated folders, files and globs to index; empty means ./docs.",
    )

    # --- indexing: filters, web pages and the re-index schedule -----------------------------
    knowledge_include: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated globs; when set, only documents (paths or URLs) that match"
        " one are indexed. Without `/` a glob matches the file name.",
    )
    knowledge_exclude: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated globs of documents (paths or URLs) never to index.",
    )
    web_timeout: float = Field(30.0, gt=0, description="Seconds to fetch one page or sitemap.")
    web_max_bytes: int = Field(
        10_000_000, gt=0, description="Largest web page or sitemap fetched, in bytes."
    )
    web_user_agent: str = Field(
        "Suara-indexer/0.1", min_length=1, description="User-Agent sent when fetching pages."
    )
    web_concurrency: int = Field(4, ge=1, le=64, description="Pages fetched at once.")
    reindex_cron: str | None = Field(
        None,
        description="Re-index while serving on this crontab schedule (minute hour day month"
        " weekday, e.g. `0 * * * *`); not with REINDEX_INTERVAL.",
    )
    reindex_interval: float | None = Field(
        None,
        gt=0,
        description="Re-index while serving every this many seconds; not with REINDEX_CRON.",
    )

    @field_validator("knowledge_include", "knowledge_exclude", mode="before")
    @classmethod
    def _split_patterns(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("reindex_cron")
    @classmethod
    def _check_crontab(cls, value: str | None) -> str | None:
        if value is not None:
            from bot.scheduler import cron_trigger

            cron_trigger(value)  # ValueError: named REINDEX_CRON by load_settings
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> Settings:
        if self.reindex_cron and self.reindex_interval:
            raise ValueError("REINDEX_CRON and REINDEX_INTERVAL: set one of them, not both")
        return self

    # --- web server ------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port `serve` listens on.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging threshold."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text (a terminal) or JSON objects (a log collector)."
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token /metrics asks for (16-256 printable characters); unset: open.",
    )
    reindex_on_start: bool = Field(True, description="Incrementally re-index when serve starts.")

    # --- audio -----------------------------------------------------------------------------
    ffmpeg_binary: str | None = Field(
        None, description="Path of a system ffmpeg; default: the one shipped by imageio-ffmpeg."
    )
    max_audio_bytes: int = Field(20_000_000, gt=0, description="Largest accepted audio upload.")
    max_audio_seconds: float = Field(120.0, gt=0, description="Longest accepted audio.")
    silence_dbfs: float = Field(-50.0, lt=0, description="Audio whose peak is below is silent.")

    # --- speech to text --------------------------------------------------------------------
    stt_provider: SttProvider = "whisper"
    stt_language: str | None = Field(None, description="Fix the spoken language (e.g. en).")
    whisper_model: str = Field(
        "base", description="`base` uses the packaged weights; a folder or another model name."
    )
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = Field(1, ge=1, le=10)
    whisper_cpu_threads: int = Field(0, ge=0, description="0: one thread per usable core.")
    openai_stt_model: str = "whisper-1"
    prosa_url: str | None = Field(
        None, description="Prosa's websocket URL, wss://HOST/v2/speech/stt (hosts differ per plan)."
    )
    prosa_api_key: SecretStr | None = None
    prosa_model: str = "stt-general-online"
    prosa_timeout: float = Field(30.0, gt=0)

    # --- text to speech --------------------------------------------------------------------
    tts_provider: TtsProvider = "piper"
    piper_model_path: Path | None = Field(None, description="Another Piper .onnx voice.")
    openai_tts_model: str = "gpt-4o-mini-tts"
    openai_tts_voice: str = "alloy"
    spoken_max_words: int = Field(40, ge=5, description="Longer answers are spoken as a gist.")

    # --- emotion ---------------------------------------------------------------------------
    emotion_api_url: str | None = Field(
        None, description="HTTP emotion service; POST {url}/predict. Unset: local detector."
    )
    emotion_timeout: float = Field(3.0, gt=0)

    # --- language models -------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        None, description="Enables the OpenAI-compatible LLM answerer (and OpenAI speech)."
    )
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_fallback_model: str | None = None
    llm_timeout: float = Field(30.0, gt=0)
    llm_max_answer_tokens: int = Field(500, gt=0)

    # --- retrieval -------------------------------------------------------------------------
    embeddings_model: str | None = Field(
        None,
        description="Set to fuse dense vectors with BM25: `local` (packaged all-MiniLM-L6-v2),"
        " `local:/folder` (a sentence-transformers model) or an OpenAI-compatible model name.",
    )
    embeddings_base_url: str | None = Field(None, description="Default: OPENAI_BASE_URL.")
    embeddings_api_key: SecretStr | None = Field(None, description="Default: OPENAI_API_KEY.")
    retrieval_top_k: int = Field(5, ge=1, le=20, description="Passages retrieved per question.")
    min_coverage: float = Field(
        0.5, ge=0, le=1, description="Share of the question's rare terms the documents must hold."
    )
    chunk_max_chars: int = Field(1200, ge=200)
    thread_ttl_days: float = Field(
        30.0, gt=0, description="Conversations idle longer are forgotten."
    )

    # --- channels and the inbox --------------------------------------------------------------
    public_base_url: str | None = Field(
        None, description="The https:// address Telegram and Twilio reach this server at."
    )
    telegram_bot_token: SecretStr | None = Field(
        None, description="From @BotFather; enables the Telegram channel."
    )
    telegram_webhook_secret: SecretStr | None = Field(
        None,
        description="Sent back by Telegram on every webhook call (1-256 of A-Z a-z 0-9 _ -).",
    )
    telegram_api_base_url: str = Field(
        "https://api.telegram.org/bot", description="Bot API base; the token is appended."
    )
    telegram_file_base_url: str = Field(
        "https://api.telegram.org/file/bot", description="File download base; token appended."
    )
    telegram_allowed_chats: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated chat/user ids or @usernames; empty: everyone.",
    )
    twilio_account_sid: str | None = Field(
        None, description="Twilio Account SID (AC...); enables the WhatsApp channel."
    )
    twilio_auth_token: SecretStr | None = Field(
        None, description="Twilio Auth Token: authenticates REST calls and signs webhooks."
    )
    twilio_whatsapp_number: str | None = Field(
        None, description="The bot's WhatsApp sender, whatsapp:+E164 (e.g. the sandbox number)."
    )
    twilio_api_base_url: str = Field(
        "https://api.twilio.com",
        description="Twilio REST API base; the only host that receives the credentials.",
    )
    twilio_allowed_numbers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated WhatsApp numbers (+E164) allowed to use the bot; empty: all.",
    )
    media_ttl: float = Field(
        86400.0,
        gt=0,
        description="Seconds a voice reply stays downloadable at PUBLIC_BASE_URL/media/....",
    )
    voice_replies: Literal["auto", "always", "never"] = Field(
        "auto", description="Voice notes in replies; auto: when the user spoke. /voice overrides."
    )
    inbox_concurrency: int = Field(8, ge=1, le=256, description="Chats answered at once.")
    inbox_max_attempts: int = Field(
        5, ge=1, description="Tries per message before an apology and parking it."
    )
    inbox_retry_seconds: float = Field(
        2.0, gt=0, description="First retry delay; doubles each attempt (max 5 min)."
    )
    inbox_retention_days: float = Field(
        7.0, gt=0, description="Finished messages (and redelivery dedupe) are kept this long."
    )

    # --- HTTP API and web chat ----------------------------------------------------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated keys for /v1/chat and /v1/audio (X-API-Key); empty: API off.",
    )
    api_max_body_bytes: int = Field(
        65_536, ge=1024, description="Largest JSON body of /v1/chat and /web/chat, in bytes."
    )
    web_chat: bool = Field(True, description="Serve the web chat page at / (and /web/*).")
    client_ip_header: str | None = Field(
        None,
        description="Header a trusted proxy puts the client's address in (Fly-Client-IP);"
        " the web chat's rate limits count per address.",
    )
    web_chat_key: SecretStr | None = Field(
        None, description="Key the web chat page asks for once; unset: the page is open."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("api_keys", "web_chat_key", "metrics_token")
    @classmethod
    def _check_keys(cls, value: Any) -> Any:
        keys = value if isinstance(value, list) else [value] if value is not None else []
        for key in keys:
            if not re.fullmatch(r"[\x21-\x7e]{16,256}", key.get_secret_value()):
                raise ValueError("a key must be 16-256 printable ASCII characters, no spaces")
        return value

    # --- limits --------------------------------------------------------------------------
    rate_limit_per_minute: int = Field(
        10, ge=0, description="Questions one user may ask per minute; 0: no limit."
    )
    rate_limit_per_hour: int = Field(
        100, ge=0, description="Questions one user may ask per hour; 0: no limit."
    )
    rate_limit_per_day: int = Field(
        500, ge=0, description="Questions one user may ask per 24 hours; 0: no limit."
    )
    llm_daily_tokens_per_user: int = Field(
        0, ge=0, description="LLM tokens one user may use per 24 hours, then extractive; 0: no cap."
    )
    llm_daily_tokens_total: int = Field(
        0,
        ge=0,
        description="LLM tokens all users may use per 24 hours, then extractive; 0: no cap.",
    )
    max_text_chars: int = Field(
        2000, gt=0, description="Longest typed question, in characters; longer gets a polite note."
    )

    # --- vector store ----------------------------------------------------------------------
    pinecone_api_key: SecretStr | None = Field(
        None, description="Keep the dense vectors in Pinecone instead of SQLite."
    )
    pinecone_index: str | None = Field(
        None, description="Pinecone index name; created serverless when it does not exist."
    )
    pinecone_host: str | None = Field(
        None, description="The index's data-plane URL; when set, the index name is not looked up."
    )
    pinecone_namespace: str = Field("", description="Namespace of this bot's vectors.")
    pinecone_cloud: str = Field("aws", description="Cloud of a Pinecone index Suara creates.")
    pinecone_region: str = Field(
        "us-east-1", description="Region of a Pinecone index Suara creates."
    )
    pinecone_api_url: str | None = Field(
        None, description="Pinecone's control-plane URL; default https://api.pinecone.io."
    )

    @field_validator(
        "knowledge_sources", "telegram_allowed_chats", "twilio_allowed_numbers", mode="before"
    )
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """`NAME=` in .env means "not set": optional settings become None."""
        if isinstance(value, str) and not value.strip() and info.field_name:
            field = cls.model_fields[info.field_name]
            if field.default is None:
                return None
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()
        ):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("twilio_account_sid")
    @classmethod
    def _check_account_sid(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"AC[0-9a-fA-F]{32}", value):
            raise ValueError("must be AC followed by 32 hexadecimal digits")
        return value

    @field_validator("twilio_whatsapp_number")
    @classmethod
    def _check_whatsapp_number(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"whatsapp:\+[1-9][0-9]{5,14}", value):
            raise ValueError(
                "must be whatsapp:+ and the number in E.164, e.g. whatsapp:+14155238886"
            )
        return value

    @model_validator(mode="after")
    def _check_providers(self) -> Settings:
        missing: list[str] = []
        if self.stt_provider == "prosa" and self.prosa_api_key is None:
            missing.append("PROSA_API_KEY (required by STT_PROVIDER=prosa)")
        if self.stt_provider == "prosa" and not self.prosa_url:
            missing.append("PROSA_URL (required by STT_PROVIDER=prosa)")
        if self.stt_provider == "openai" and self.openai_api_key is None:
            missing.append("OPENAI_API_KEY (required by STT_PROVIDER=openai)")
        if self.tts_provider == "openai" and self.openai_api_key is None:
            missing.append("OPENAI_API_KEY (required by TTS_PROVIDER=openai)")
        if is_local(self.embeddings_model):
            missing.extend(_local_embeddings_problems(str(self.embeddings_model)))
        elif self.embeddings_model and self.embeddings_key is None:
            missing.append("EMBEDDINGS_API_KEY or OPENAI_API_KEY (required by EMBEDDINGS_MODEL)")
        missing.extend(self._vector_store_problems())
        if self.ffmpeg_binary and not shutil.which(self.ffmpeg_binary):
            missing.append(f"FFMPEG_BINARY ({self.ffmpeg_binary} is not an executable)")
        if self.piper_model_path is not None and not self.piper_model_path.is_file():
            missing.append(f"PIPER_MODEL_PATH ({self.piper_model_path} is not a file)")
        if missing:
            raise ValueError("missing or wrong: " + "; ".join(missing))
        return self

    def _vector_store_problems(self) -> list[str]:
        if self.pinecone_api_key is None:
            given = [name for name in ("pinecone_index", "pinecone_host") if getattr(self, name)]
            return [f"PINECONE_API_KEY (required by {given[0].upper()})"] if given else []
        problems = []
        if not self.embeddings_model:
            problems.append("EMBEDDINGS_MODEL (required by PINECONE_API_KEY)")
        if not (self.pinecone_index or self.pinecone_host):
            problems.append("PINECONE_INDEX or PINECONE_HOST (required by PINECONE_API_KEY)")
        return problems

    # --- derived values ----------------------------------------------------------------------
    @property
    def embeddings_key(self) -> SecretStr | None:
        return self.embeddings_api_key or self.openai_api_key

    @cached_property
    def sources(self) -> list[str]:
        """What to index: KNOWLEDGE_SOURCES, or the project's own docs/ by default."""
        return self.knowledge_sources or [str(PROJECT_DIR / "docs")]

    def path(self, name: str) -> Path:
        """A file under DATA_DIR (created on first use)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir / name


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The `modules` that cannot be imported (looked up without importing them)."""
    absent = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(module)
    return absent


def _local_embeddings_problems(model: str, modules: Sequence[str] | None = None) -> list[str]:
    """What keeps EMBEDDINGS_MODEL=local[:folder] from working, one message per problem.

    `modules`: those it needs (default: sentence-transformers, and the packaged model's).
    """
    problems = []
    folder = local_folder(model)
    if modules is None:
        modules = REQUIRED_MODULES if folder is None else REQUIRED_MODULES[:1]
    absent = missing_modules(modules)
    if absent:
        problems.append(
            f"EMBEDDINGS_MODEL ({model} needs the Python modules {', '.join(absent)}; "
            f"install them with `{INSTALL_HINT}`)"
        )
    if folder is not None and not folder.is_dir():
        problems.append(f"EMBEDDINGS_MODEL ({folder} is not a folder)")
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning validation errors into one message that names each setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(part) for part in err["loc"]).upper()
            message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if name else message)
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
