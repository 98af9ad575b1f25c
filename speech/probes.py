"""Quick checks of the speech side for `python -m bot doctor`: ffmpeg, the local models' files
and the configured speech services. Each returns one line of detail or raises `ProbeError`."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from speech.emotion_http import HttpEmotionDetector, parse_emotion
from speech.errors import ProbeError
from speech.ffmpeg import locate_ffmpeg

if TYPE_CHECKING:
    from bot.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
NETWORK_FIX = "check {setting} and that this machine can reach it (DNS, firewall, proxy)"


def _megabytes(*paths: Path) -> str:
    return f"{sum(p.stat().st_size for p in paths) / 1e6:.0f} MB"


def _needs_module(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ProbeError(
            f"the Python module {module} ({what}) is not installed",
            "reinstall Suara: pip install .",
        )


async def ffmpeg_version(override: str | None, seconds: float) -> str:
    """Runs `ffmpeg -version` (FFMPEG_BINARY, else imageio-ffmpeg's); its first line and path."""
    try:
        path = locate_ffmpeg(override)
    except (FileNotFoundError, RuntimeError) as exc:
        raise ProbeError(
            str(exc), "unset FFMPEG_BINARY to use the ffmpeg shipped by imageio-ffmpeg"
        ) from exc
    try:
        process = await asyncio.create_subprocess_exec(
            path,
            "-hide_banner",
            "-version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(seconds):
            output, _ = await process.communicate()
    except OSError as exc:
        raise ProbeError(f"{path} does not run: {exc}", "set FFMPEG_BINARY to an ffmpeg") from exc
    first = output.decode(errors="replace").strip().splitlines()[:1]
    if process.returncode != 0 or not first:
        raise ProbeError(
            f"{path} -version exited with {process.returncode}", "set FFMPEG_BINARY to an ffmpeg"
        )
    version = " ".join(first[0].split()[:3])
    return f"{version} ({path})"


def whisper_files(settings: Settings) -> str:
    """Whether WHISPER_MODEL's files are on disk, without loading the model."""
    from speech.whisper_weights import assembled_folder, packaged_pieces

    _needs_module("faster_whisper", "Whisper speech-to-text")
    cache = settings.data_dir / "models"
    name = settings.whisper_model
    if name == "base":
        try:
            pieces = packaged_pieces()
        except FileNotFoundError as exc:
            raise ProbeError(str(exc), "reinstall Suara: pip install .") from exc
        folder = assembled_folder(cache, pieces)
        where = f"assembled in {folder}" if folder else f"assembled into {cache} at first use"
        return f"packaged Whisper base weights ({_megabytes(*pieces)}), {where}"
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "model.bin").is_file():
            raise ProbeError(
                f"WHISPER_MODEL folder {folder} has no model.bin",
                "point WHISPER_MODEL at a CTranslate2 Whisper model folder, or use `base`",
            )
        return f"Whisper model in {folder} ({_megabytes(folder / 'model.bin')})"
    downloaded = any((cache / "hub").glob(f"models--*--faster-whisper-{name}"))
    if downloaded:
        return f"Whisper {name} downloaded in {cache / 'hub'}"
    return f"Whisper {name} is not on disk: faster-whisper downloads it at first use (internet)"


def piper_files(settings: Settings) -> str:
    """Whether the Piper voice (PIPER_MODEL_PATH or the packaged one) and its config exist."""
    from speech.tts_piper import packaged_voice

    _needs_module("piper", "Piper text-to-speech")
    if settings.piper_model_path is not None:
        model = settings.piper_model_path
        config = model.with_name(model.name + ".json")
        fix = f"put the voice's config beside it as {config.name}"
    else:
        model, config = packaged_voice()
        fix = "reinstall Suara: pip install ."
    for path in (model, config):
        if not path.is_file():
            raise ProbeError(f"Piper voice file missing: {path}", fix)
    return f"Piper voice {model.name} ({_megabytes(model)})"


def openai_problem(exc: BaseException, base_url: str, key: str, url_setting: str) -> ProbeError:
    """What an OpenAI-client failure against `base_url` means, and the setting to fix."""
    import openai

    if isinstance(exc, openai.AuthenticationError):
        return ProbeError(
            f"{base_url} refused the key (HTTP 401): the key is wrong",
            f"set {key} to a valid key for {base_url}",
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return ProbeError(
            f"{base_url} denied access (HTTP 403): {exc.message}",
            f"give the key in {key} access to this API and model",
        )
    if isinstance(exc, openai.NotFoundError):
        return ProbeError(
            f"{base_url} answered 404 Not Found: {exc.message}",
            f"check {url_setting} (it usually ends in /v1) and the model name",
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProbeError(
            f"{base_url} did not answer in time", NETWORK_FIX.format(setting=url_setting)
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return ProbeError(
            f"cannot reach {base_url}: {cause}", NETWORK_FIX.format(setting=url_setting)
        )
    if isinstance(exc, openai.APIStatusError):
        return ProbeError(
            f"{base_url} answered HTTP {exc.status_code}: {exc.message}",
            "try again later; if it persists, check the provider's status",
        )
    return ProbeError(f"{type(exc).__name__}: {exc}", f"check {url_setting} and {key}")


async def list_models(base_url: str | None, api_key: str, seconds: float) -> list[str]:
    """The model ids an OpenAI-compatible API lists (GET /models): a cheap authenticated call."""
    from openai import AsyncOpenAI

    async with AsyncOpenAI(
        api_key=api_key, base_url=base_url, timeout=seconds, max_retries=0
    ) as client:
        return [model.id async for model in client.models.list()]


def require_models(offered: list[str], wanted: dict[str, str], base_url: str) -> ProbeError | None:
    """A problem when a wanted model (by setting name) is missing from a non-empty list."""
    missing = {setting: model for setting, model in wanted.items() if model not in offered}
    if not offered or not missing:
        return None
    setting, model = next(iter(missing.items()))
    examples = ", ".join(sorted(offered)[:5])
    return ProbeError(
        f"{setting}={model} is not among the {len(offered)} models {base_url} offers",
        f"set {setting} to a model this API offers (e.g. {examples})",
    )


async def openai_speech(settings: Settings, seconds: float) -> str:
    """Lists the models of the OpenAI speech API and looks for OPENAI_STT/TTS_MODEL there."""
    assert settings.openai_api_key is not None  # STT/TTS_PROVIDER=openai requires it
    base = settings.openai_base_url or OPENAI_URL
    try:
        offered = await list_models(
            settings.openai_base_url, settings.openai_api_key.get_secret_value(), seconds
        )
    except Exception as exc:  # the client raises many kinds; each is explained
        raise openai_problem(exc, base, "OPENAI_API_KEY", "OPENAI_BASE_URL") from exc
    wanted = {}
    if settings.stt_provider == "openai":
        wanted["OPENAI_STT_MODEL"] = settings.openai_stt_model
    if settings.tts_provider == "openai":
        wanted["OPENAI_TTS_MODEL"] = settings.openai_tts_model
    problem = require_models(offered, wanted, base)
    if problem is not None:
        raise problem
    return f"{base}: key accepted, {', '.join(wanted.values())} offered"


async def prosa_handshake(settings: Settings, seconds: float) -> str:
    """Opens Prosa's websocket with the key (the upgrade checks it) and closes it at once."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

    assert settings.prosa_url and settings.prosa_api_key  # STT_PROVIDER=prosa requires both
    url = settings.prosa_url
    try:
        async with connect(
            url,
            additional_headers={"x-api-key": settings.prosa_api_key.get_secret_value()},
            open_timeout=seconds,
            close_timeout=1,
        ):
            pass
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise ProbeError(
                f"Prosa refused the key (HTTP {status}): the key is wrong",
                f"set PROSA_API_KEY to a valid key for {url}",
            ) from exc
        raise ProbeError(
            f"Prosa answered HTTP {status} at {url}", "check PROSA_URL (wss://HOST/v2/speech/stt)"
        ) from exc
    except InvalidURI as exc:
        raise ProbeError(f"PROSA_URL is not a websocket URL: {url}", "use wss://...") from exc
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise ProbeError(
            f"cannot reach Prosa at {url}: {exc or type(exc).__name__}",
            NETWORK_FIX.format(setting="PROSA_URL"),
        ) from exc
    return f"{url}: key accepted"


async def emotion_service(settings: Settings, seconds: float) -> str:
    """Asks EMOTION_API_URL/predict about one sentence and reads its label."""
    url = HttpEmotionDetector.from_settings(settings).url
    form = aiohttp.FormData()
    form.add_field("text", "Thank you, that helps a lot.")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.post(url, data=form) as response,
        ):
            if response.status != 200:
                body = (await response.text())[:120]
                raise ProbeError(
                    f"{url} answered HTTP {response.status}: {body}",
                    "check EMOTION_API_URL and the service's logs",
                )
            payload = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ProbeError(
            f"cannot use {url}: {exc or type(exc).__name__}",
            NETWORK_FIX.format(setting="EMOTION_API_URL"),
        ) from exc
    emotion = parse_emotion(payload)
    if emotion is None:
        raise ProbeError(
            f"{url} answered without a known emotion label: {str(payload)[:120]}",
            'the service must answer {"label": ..., "score": ...}',
        )
    return f"{url}: answered {emotion.label} {emotion.score:.2f}"
