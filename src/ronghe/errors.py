"""Errors that reach the user.

Every error a user can fix (bad input, bad options, a missing model, a broken bundle) is a
``RongheError``: its message says what was wrong, where, and how to fix it. The CLI prints
it without a traceback and exits with code 2. Anything else is an internal error (exit 1).
"""

from __future__ import annotations


class RongheError(Exception):
    """Base class for errors caused by the user's input or environment (CLI exit code 2)."""

    exit_code = 2


class DataError(RongheError):
    """A data file or in-memory data set cannot be used as given."""


class ConfigError(RongheError):
    """An option or configuration value is invalid."""


class BackboneError(RongheError):
    """A model reference cannot be resolved or loaded."""


class BundleError(RongheError):
    """A bundle folder is missing, incomplete, of another format version, or tampered with."""


class NotFittedError(RongheError):
    """A model was used before ``fit`` (or ``load``)."""


class InputRejected(DataError):
    """One input of a request cannot be used; ``status`` and ``code`` are what a service answers
    (413 too large, 415 not a supported type, 422 not decodable), ``index`` which input."""

    def __init__(self, message: str, *, status: int = 422, code: str = "invalid_input",
                 index: int | None = None):
        super().__init__(message)
        self.status, self.code, self.index = status, code, index
