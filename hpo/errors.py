"""The one exception type the CLI turns into a single line and a non-zero exit."""

from __future__ import annotations


class HpoError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""


class SpecError(HpoError):
    """A study file (or stored spec snapshot) that does not validate."""


class StorageError(HpoError):
    """The storage URL is malformed or the database cannot be reached."""


class DataError(HpoError):
    """A data set that cannot be found or read here: what is missing and how to fix it."""


class TrialTooLarge(HpoError):
    """A trial whose estimated training memory exceeds the limit; it fails, others go on."""


class StudyConflictError(HpoError):
    """A study of that name exists with a different spec."""


class ModelEntryError(HpoError):
    """A user's own network ([model] entry) that cannot be imported, called or built."""
