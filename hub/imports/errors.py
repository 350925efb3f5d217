"""Errors of the roster import."""

from __future__ import annotations

from hub.errors import EldercareError


class ImportFileError(EldercareError):
    """The file as a whole cannot be read: wrong format, no header row, a required column missing."""
