"""Decoding any incoming audio to 16 kHz mono PCM, and encoding PCM as an OGG/Opus voice note.

Both run the ffmpeg binary through pipes with asyncio subprocesses rather than through pydub's
loaders: pydub calls ffprobe to probe inputs of unknown format, and imageio-ffmpeg ships no
ffprobe. pydub is used only where it needs no probing (the loudness analysis of raw PCM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence

from speech.errors import (
    AudioTooLarge,
    AudioTooLong,
    CorruptAudio,
    EmptyAudio,
    ProviderError,
    SilentAudio,
)
from speech.ffmpeg import audio_segment_class, ffmpeg_binary
from speech.types import Pcm, VoiceNote

logger = logging.getLogger(__name__)

ASR_SAMPLE_RATE = 16_000
VOICE_NOTE_BITRATE = "24k"
# Codecs pad a little (MP3 encoder delay, AAC priming): tolerate that much past the limit.
_LENGTH_TOLERANCE_S = 0.25
_FFMPEG_TIMEOUT_S = 120.0
_STDERR_TAIL = 600
_MP4_MIMES = {"audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac-mp4", "video/mp4", "audio/3gpp"}


class _FfmpegFailed(Exception):
    def __init__(self, returncode: int | None, stderr: str) -> None:
        super().__init__(f"ffmpeg exited with {returncode}: {stderr}")
        self.stderr = stderr


async def _run_ffmpeg(args: Sequence[str], data: bytes | None) -> bytes:
    """Run ffmpeg with `args`, feeding `data` on stdin; stdout on success, else _FfmpegFailed."""
    binary = ffmpeg_binary()
    try:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            *args,
            stdin=asyncio.subprocess.PIPE if data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise ProviderError(f"cannot run ffmpeg ({binary}): {exc}") from exc
    try:
        async with asyncio.timeout(_FFMPEG_TIMEOUT_S):
            out, err = await proc.communicate(data)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise _FfmpegFailed(None, f"timed out after {_FFMPEG_TIMEOUT_S:.0f} s") from None
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
        raise _FfmpegFailed(proc.returncode, tail)
    return out


def _is_mp4(data: bytes, mime_type: str | None) -> bool:
    mime = (mime_type or "").split(";")[0].strip().lower()
    return mime in _MP4_MIMES or data[4:8] == b"ftyp"


def _decode_args(source: str, max_seconds: float) -> list[str]:
    cap = f"{max_seconds + 1.0:.3f}"
    return ["-i", source, "-t", cap, "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(ASR_SAMPLE_RATE),
            "-acodec", "pcm_s16le", "-f", "s16le", "pipe:1"]  # fmt: skip


def _write_temp(data: bytes) -> str:
    fd, path = tempfile.mkstemp(prefix="suara-audio-", suffix=".bin")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


async def _decode_via_file(data: bytes, max_seconds: float) -> bytes:
    """Decode from a temporary file, for containers that need seeking (MP4 with moov at the end)."""
    path = await asyncio.to_thread(_write_temp, data)
    try:
        return await _run_ffmpeg(_decode_args(path, max_seconds), None)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.remove, path)


async def _decode(data: bytes, mime_type: str | None, max_seconds: float) -> bytes:
    if _is_mp4(data, mime_type):
        return await _decode_via_file(data, max_seconds)
    try:
        return await _run_ffmpeg(_decode_args("pipe:0", max_seconds), data)
    except _FfmpegFailed as exc:
        logger.info("pipe decode failed (%s); retrying from a temporary file", exc.stderr[-200:])
        return await _decode_via_file(data, max_seconds)


def _peak_dbfs(raw: bytes) -> float:
    segment = audio_segment_class()(
        data=raw, sample_width=2, frame_rate=ASR_SAMPLE_RATE, channels=1
    )
    return float(segment.max_dBFS)


async def to_pcm16k(
    data: bytes,
    mime_type: str | None,
    *,
    max_bytes: int,
    max_seconds: float,
    silence_dbfs: float,
) -> Pcm:
    """Decode any audio ffmpeg reads (OGG/Opus, MP3, M4A/AAC, WAV, AMR...) to 16 kHz mono s16le.

    Raises EmptyAudio, AudioTooLarge (checked before decoding), CorruptAudio (ffmpeg failed; its
    stderr tail is in the message), AudioTooLong (decoding stops just past `max_seconds`) and
    SilentAudio (peak below `silence_dbfs`).
    """
    if not data:
        raise EmptyAudio("no audio bytes")
    if len(data) > max_bytes:
        raise AudioTooLarge(f"{len(data)} bytes > limit {max_bytes}")
    try:
        raw = await _decode(data, mime_type, max_seconds)
    except _FfmpegFailed as exc:
        logger.warning("could not decode %d bytes of %s: %s", len(data), mime_type, exc.stderr)
        raise CorruptAudio(f"ffmpeg could not decode {mime_type or 'audio'}: {exc.stderr}") from exc
    raw = raw[: len(raw) - len(raw) % 2]
    if not raw:
        raise EmptyAudio(f"{len(data)} bytes of {mime_type or 'audio'} decoded to no samples")
    pcm = Pcm(raw, ASR_SAMPLE_RATE)
    if pcm.duration > max_seconds + _LENGTH_TOLERANCE_S:
        raise AudioTooLong(f"audio longer than {max_seconds:g} s")
    peak = await asyncio.to_thread(_peak_dbfs, raw)
    if peak < silence_dbfs:
        raise SilentAudio(f"peak {peak:.1f} dBFS is below {silence_dbfs:g} dBFS")
    return pcm


async def to_voice_note(pcm: Pcm, *, bitrate: str = VOICE_NOTE_BITRATE) -> VoiceNote:
    """Encode `pcm` as an OGG/Opus voice note: mono, 48 kHz, libopus VoIP mode, ~24 kbit/s."""
    if not pcm.data:
        raise EmptyAudio("no samples to encode")
    args = ["-f", "s16le", "-ar", str(pcm.sample_rate), "-ac", "1", "-i", "pipe:0",
            "-ac", "1", "-ar", "48000", "-c:a", "libopus", "-b:a", bitrate, "-vbr", "on",
            "-application", "voip", "-map_metadata", "-1", "-f", "ogg", "pipe:1"]  # fmt: skip
    try:
        encoded = await _run_ffmpeg(args, pcm.data)
    except _FfmpegFailed as exc:
        logger.error("could not encode a %.1f s voice note: %s", pcm.duration, exc.stderr)
        raise ProviderError(f"ffmpeg could not encode the voice note: {exc.stderr}") from exc
    return VoiceNote(data=encoded, duration=round(pcm.duration, 3))
