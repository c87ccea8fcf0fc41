"""Candidate labels of zero-shot tasks (text, image, ...): how a row or an option gives
them, as the transformers zero-shot pipelines take them, and the one-line checks of the
options no row could fix."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskhub.errors import RowError, TaskhubError


def parse_labels(value) -> list[str]:
    """Candidate labels as the pipeline takes them: a list, or one string of labels
    separated by commas (a JSON list written as text, e.g. by a CSV, is read as a list).
    Raises ValueError for what is neither."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a JSON list") from None
        else:
            return [label.strip() for label in text.split(",") if label.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of labels or a comma-separated string, not {type(value).__name__}")
    labels = []
    for label in value:
        if isinstance(label, (int, float)) and not isinstance(label, bool):
            label = str(label)
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{label!r} is not a label (labels are non-empty strings)")
        labels.append(label)
    return labels


def row_candidates(i: int, value, default: list[str] | None) -> list[str]:
    """Row ``i``'s candidate labels: its own (a list or the text of one), else the task's
    ``default``; a row error names what is missing or wrong."""
    if value is None:
        if default is None:
            raise RowError(i, "no candidate labels: give the row a candidate_labels list, or set task.candidate_labels=[a,b,...]")
        return list(default)
    try:
        labels = parse_labels(value)
    except ValueError as exc:
        raise RowError(i, f"candidate_labels: {exc}") from None
    if not labels:
        raise RowError(i, "candidate_labels is empty: give at least one label")
    return labels


def check_candidate_options(config: Any, default_template: str, prefix: str = "task.") -> None:
    """One-line errors for options no row could fix: an empty candidate list, a template
    with no place for the label. ``config`` has ``hypothesis_template`` and ``candidate_labels``."""
    template = config.hypothesis_template
    try:
        filled = template.format("\0")
    except (IndexError, KeyError, ValueError) as exc:
        raise TaskhubError(
            f"{prefix}hypothesis_template={template!r}: cannot put a label into it ({type(exc).__name__}: {exc}); "
            f"write {{}} where the label goes, e.g. {default_template!r}"
        ) from None
    if filled == template:
        raise TaskhubError(f"{prefix}hypothesis_template={template!r} has no {{}} for the label, e.g. {default_template!r}")
    if config.candidate_labels is not None:
        try:
            labels = parse_labels(list(config.candidate_labels))
        except ValueError as exc:
            raise TaskhubError(f"{prefix}candidate_labels: {exc}") from None
        if not labels:
            raise TaskhubError(f"{prefix}candidate_labels is empty: give at least one label, e.g. {prefix}candidate_labels=[cat,dog]")


@contextmanager
def call_options(task: Any, default_template: str, **given: Any) -> Iterator[None]:
    """``task`` with the pipeline's per-call options (``candidate_labels`` as a list or one
    comma-separated string, ``hypothesis_template``, ...) in place of its own for one call;
    unset (None) ones keep the task's."""
    given = {k: v for k, v in given.items() if v is not None}
    if "candidate_labels" in given:
        try:
            given["candidate_labels"] = parse_labels(given["candidate_labels"])
        except ValueError as exc:
            raise TaskhubError(f"candidate_labels: {exc}") from None
    saved = task.config
    task.config = dataclasses.replace(saved, **given)
    try:
        check_candidate_options(task.config, default_template, prefix="")
        yield
    finally:
        task.config = saved
