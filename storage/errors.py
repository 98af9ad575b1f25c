"""The storage package's exception tree."""


class StorageError(Exception):
    """Base of every error raised by the storage package."""
