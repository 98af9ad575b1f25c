"""The rag package's exception tree."""


class RagError(Exception):
    """Base of every error raised by the rag package."""


class IndexingError(RagError):
    """A document could not be loaded or indexed."""


class RetrievalError(RagError):
    """The index could not be searched."""


class ModelError(RagError):
    """Every configured language or embedding model failed."""


class ProbeError(RagError):
    """A check of `python -m bot doctor` failed; `fix` says what to do about it."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix
