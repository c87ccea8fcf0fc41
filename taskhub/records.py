"""Inputs of the Python API as records: what :meth:`~taskhub.task.Task.predict` and a
call ``task(...)`` accept, from one string or image to a DataFrame or a generator, turned
into rows with the task's canonical column names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from taskhub.errors import TaskhubError

#: Keys of a mapping that is one media input rather than a record (:meth:`RecordInputs.as_records`).
MEDIA_VALUE_KEYS = frozenset({"array", "raw", "sampling_rate", "bytes", "path"})


class RecordInputs:
    """The Python-API input side of a task (a :class:`~taskhub.task.Task` supplies
    ``name`` and its columns)."""

    def as_records(self, inputs: Any) -> Iterator[Mapping[str, Any]]:
        """Rows with canonical column names from what Python users pass: records (dicts),
        one record, a pandas DataFrame, a ``datasets.Dataset``, any iterable or generator
        of these, and, for a task with one input column, plain values for it (a string, a
        PIL image, an array, an audio dict ``{array, sampling_rate}``)."""
        if self._single_input(inputs):
            inputs = [inputs]
        elif type(inputs).__module__.startswith("pandas") and hasattr(inputs, "to_dict"):
            inputs = inputs.to_dict(orient="records")
        elif hasattr(inputs, "column_names") and hasattr(inputs, "iter"):  # datasets.Dataset / IterableDataset
            from taskhub.data import iter_rows

            inputs = iter_rows(inputs)
        yield from map(self._as_record, inputs)

    def _is_record(self, value: Any) -> bool:
        """A mapping of columns, not a media value given as a mapping (an audio dict
        ``{array, sampling_rate}``, an encoded file ``{bytes, path}``)."""
        if not isinstance(value, Mapping):
            return False
        columns = (*self.input_columns, *self.optional_columns, *self.target_columns)
        return not value or any(c in value for c in columns) or not value.keys() <= MEDIA_VALUE_KEYS

    def _single_input(self, inputs: Any) -> bool:
        """One input rather than a collection of them: a record, a string, bytes, an image,
        an array for a one-column task."""
        if isinstance(inputs, (str, bytes, Mapping)):
            return True
        if type(inputs).__module__.startswith(("PIL", "numpy", "torch")) and not isinstance(inputs, (list, tuple)):
            return self._value_column is not None
        return False

    @property
    def _value_column(self) -> str | None:
        """The column a bare value fills: the one input column, or for a task that takes one
        of several (ner: ``text`` or ``tokens``) the first of them; None with several inputs."""
        if len(self.input_columns) == 1:
            return self.input_columns[0]
        if not self.input_columns and self.optional_columns:
            return self.optional_columns[0]
        return None

    def _as_record(self, value: Any) -> Mapping[str, Any]:
        if self._is_record(value):
            return value
        if self._value_column is None:
            raise TaskhubError(
                f"task {self.name} takes records with the columns {', '.join(self.input_columns)} "
                f"(dicts), not a bare {type(value).__name__}"
            )
        return {self._value_column: value}
