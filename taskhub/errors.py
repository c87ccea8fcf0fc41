"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations


class TaskhubError(Exception):
    """A problem with the user's input, config or environment, explained in one line."""


class RowError(ValueError):
    """Raised inside a task's per-batch step for one bad row.

    ``index`` is the row's position within the batch; the core turns it into the
    absolute row number and the file name before it reaches the user.
    """

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index
        self.message = message
