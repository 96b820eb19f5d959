"""Errors a user can cause.

The CLI turns any :class:`GankitError` into one line on stderr and its ``exit_code``; everything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GankitError(Exception):
    """A problem the user can fix; ``str(err)`` names the bad thing and what is expected."""

    exit_code = 1


class UsageError(GankitError):
    """Bad command-line value, unknown key, missing path, unusable input data (exit code 2)."""

    exit_code = 2


class DataError(UsageError):
    """Input data that cannot be used (empty folder, no readable image, bad caption file)."""


class NonFiniteError(GankitError):
    """A loss or weight became NaN/inf; training stopped without writing the bad state."""

    exit_code = 3


class UntrustedFileError(GankitError):
    """A checkpoint or export that is not plain tensors (e.g. carries a pickle payload)."""

    exit_code = 2
