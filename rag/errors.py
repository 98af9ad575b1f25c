"""The rag package's exception tree."""


class RagError(Exception):
    """Base of every error raised by the rag package."""


class IndexingError(RagError):
    """A document could not be loaded or indexed."""


class RetrievalError(RagError):
    """The index could not be searched."""


class ModelError(RagError):
    """Every configured language or embedding model failed."""
