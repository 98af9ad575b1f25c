"""Locates the ffmpeg binary (FFMPEG_BINARY, else imageio-ffmpeg's) and points pydub at it."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydub import AudioSegment

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_configured: str | None = None
_override: str | None = None


def set_ffmpeg_binary(path: str | None) -> None:
    """Use `path` (a file or a name on PATH) instead of imageio-ffmpeg's binary; None resets."""
    global _configured, _override
    with _lock:
        _override = path
        _configured = None


def locate_ffmpeg(override: str | None = None) -> str:
    """The ffmpeg `override` names (a file or a command on PATH), else imageio-ffmpeg's."""
    if override:
        found = override if os.path.isfile(override) else shutil.which(override)
        if not found:
            raise FileNotFoundError(f"FFMPEG_BINARY {override!r} is neither a file nor on PATH")
        return found
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def ffmpeg_binary() -> str:
    """The ffmpeg executable's path; resolved once, and pydub's converter set to it."""
    global _configured
    with _lock:
        if _configured is None:
            path = locate_ffmpeg(_override)
            segment = _audio_segment_class()
            segment.converter = path
            _configured = path
            logger.debug("ffmpeg binary: %s", path)
        return _configured


def _audio_segment_class() -> type[AudioSegment]:
    # pydub warns at import time when no ffmpeg is on PATH; we set the converter ourselves.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Couldn't find ff", category=RuntimeWarning)
        from pydub import AudioSegment

    segment: type[AudioSegment] = AudioSegment
    return segment


def audio_segment_class() -> type[AudioSegment]:
    """pydub's AudioSegment, imported quietly, with its converter pointing at our ffmpeg."""
    ffmpeg_binary()
    return _audio_segment_class()
