"""Storage errors, translated from psycopg at this package's boundary."""

from hub.errors import EldercareError


class StorageError(EldercareError):
    """The database refused or failed an operation the hub needed."""
