"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

from dataclasses import dataclass


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


class BadRowError(TaskhubError):
    """A :class:`RowError` placed in its file: ``source`` and the 1-based ``row_number``.

    With ``on_error=skip`` the run records it (``errors.jsonl``) and goes on.
    """

    def __init__(self, source: str, row_number: int, reason: str):
        super().__init__(f"{source}, row {row_number}: {reason}")
        self.source = source
        self.row_number = row_number
        self.reason = reason


@dataclass(frozen=True)
class RowFailure:
    """What prediction yields, with ``on_error=skip``, in place of a bad row's record."""

    row: int  # 0-based position in the input
    reason: str
