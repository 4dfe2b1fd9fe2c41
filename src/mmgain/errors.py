"""User errors, told apart from bugs.

Anything a user can cause — bad data, a bad option, an unusable output folder —
raises a :class:`UserError`; the CLI prints its message and exits 2.  Every
other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what and where."""


class DataError(UserError, ValueError):
    """Bad user data; the message names the source, the modality and the row."""


class SpecError(UserError, ValueError):
    """A bad experiment, protocol or command-line setting; the message names it."""


class UnknownName(SpecError, KeyError):
    """A name that is not registered (an experiment, protocol, dataset, task, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OutputError(UserError, OSError):
    """The run folder cannot be used as asked."""


class DataWarning(UserWarning):
    """Legal but suspicious input: printed in the terminal and recorded in run.json."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: ends a run as Ctrl-C does (finished work kept, run.json says interrupted)."""
