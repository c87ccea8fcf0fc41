"""The Python-API prediction of a task (``task.predict``, ``task(...)``,
``task.predict_iter``): records streamed through the engine in length-sorted batches, and
the per-row preprocessing that turns a library's failure into an error naming the row.
:class:`~taskhub.task.Task` inherits it; the engine (:mod:`taskhub.engine.streaming`)
drives the steps a task defines."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from taskhub.collate import nested_cost
from taskhub.engine.batching import SIDE_PREFIX
from taskhub.engine.streaming import stream
from taskhub.errors import BadRowError, RowError, RowFailure, TaskhubError

#: Default ``predict.max_tokens`` for text on the CPU (see :meth:`Task.default_max_tokens`).
CPU_TEXT_MAX_TOKENS = 4096


class StreamedPrediction:
    """The prediction half of the Task interface (see :mod:`taskhub.streamed_prediction`)."""

    def predict(self, inputs: Any, batch_size: int = 32, source: str = "input", **engine) -> list[dict]:
        """Predict on raw inputs; one result per input, in order.

        The Python-API counterpart of ``mode=predict``: returns only the prediction
        fields. ``inputs`` is anything :meth:`as_records` takes (records, plain values,
        a DataFrame, a ``datasets.Dataset``, a generator). ``engine`` takes
        :meth:`predict_iter`'s batching options.
        """
        records = list(self.as_records(inputs))  # a call of the wrong shape fails before the model loads
        return list(self.predict_iter(records, batch_size=batch_size, source=source, **engine))

    def __call__(self, inputs: Any, **engine) -> dict | list[dict]:
        """Like a transformers pipeline: ``task("some text")`` -> one result,
        ``task(["a", "b"])`` (or any collection :meth:`predict` takes) -> a list."""
        single = self._single_input(inputs)
        results = self.predict([inputs] if single else inputs, **engine)
        return results[0] if single else results

    def predict_iter(
        self,
        records: Any,
        batch_size: int = 32,
        source: str = "input",
        *,
        max_tokens: int | None = None,
        sort_by_length: bool = True,
        chunk_size: int | None = None,
        on_error: str = "raise",
        first_row: int = 0,
    ) -> Iterator[dict | RowFailure]:
        """Stream predictions, in input order, for a stream of records (or anything
        :meth:`as_records` takes).

        Records are read ``chunk_size`` at a time (default: :attr:`chunk_batches` batches), so memory
        does not grow with the input. Within a chunk, rows are preprocessed together,
        batched by length (:func:`~taskhub.engine.batching.plan_batches`: at most ``batch_size``
        features and ``max_tokens`` padded positions per batch) and put back in order.
        A bad row raises :class:`~taskhub.errors.BadRowError`, or with ``on_error="skip"``
        yields a :class:`~taskhub.errors.RowFailure` in its place. ``first_row`` is the
        input position of the first record (for row numbers when resuming). Tasks with
        :attr:`overlap_preprocessing` prepare the next chunk while this one runs.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        yield from stream(
            self,
            self.as_records(records),
            source,
            batch_size=batch_size,
            max_tokens=self.default_max_tokens() if max_tokens is None else max_tokens,
            sort_by_length=sort_by_length,
            chunk_size=chunk_size or max(self.chunk_batches * batch_size, 8),
            skip=on_error == "skip",
            first_row=first_row,
            overlap=self._overlap(),
        )

    def _overlap(self) -> bool:
        """Whether preprocessing runs beside the forward pass: for tasks that allow it
        (:attr:`overlap_preprocessing`) on an accelerator, where the host thread mostly
        waits for kernels. On the CPU it did not pay, even with a core left free: image
        processors and feature extractors hold the GIL for most of their work, and the
        forward pass then waits for it (measured: 15% slower to 3% faster, benchmark row 4)."""
        if not self.overlap_preprocessing or self.model.device.type == "cpu":
            return False
        self.processor  # noqa: B018 - loaded here, not by two threads at once
        return True

    def default_max_tokens(self) -> int | None:
        """The padded-position budget per batch when the user sets none.

        On the CPU a batch of a few thousand positions already keeps the matrix units busy,
        and a budget keeps a chunk's few long texts out of batches of shorter ones (on the
        benchmark's mixed-length texts, 4,096 was 15% faster than no cap). Accelerators
        want the biggest batches: no cap. Lengths of other modalities are not tokens."""
        if self.modality == "text" and self.model.device.type == "cpu":
            return CPU_TEXT_MAX_TOKENS
        return None

    def feature_length(self, features: Mapping[str, list], index: int) -> int:
        """What one feature costs to run, for length batching: the padded length of its
        first model input (tokens, audio samples; choices x longest for several sequences).
        Tasks whose inputs cost otherwise override it (image_classification: pixels)."""
        for key, values in features.items():
            if not key.startswith(SIDE_PREFIX):
                value = values[index]
                if key in self.nested_features:
                    return nested_cost(value)
                return len(value) if hasattr(value, "__len__") else 1
        return 1

    def run_preprocess(self, batch, source: str, row_numbers, with_targets: bool = False) -> dict[str, list]:
        """:meth:`preprocess` (+ :meth:`encode_targets`), a bad row becoming a user error that
        names the file and row.

        Tasks raise RowError for rows they know to be bad. Whatever else a library raises on
        the batch (a feature extractor on a clip too short for it, a tokenizer on a value it
        cannot take) belongs to a row too: the rows are preprocessed one at a time and the
        first that fails alone is the bad one, so ``on_error=skip`` sets just that row aside.
        A TaskhubError (the options, not a row) and a failure no single row causes pass through.
        """

        def run(rows):
            features = self.preprocess(rows)
            if with_targets:
                features.update(self.encode_targets(rows, features))
            return features

        try:
            return run(batch)
        except RowError as err:
            raise BadRowError(source, row_numbers[err.index], err.message) from None
        except TaskhubError:
            raise
        except Exception:
            from taskhub.media import library_message

            for i, row_number in enumerate(row_numbers):
                try:
                    run({column: values[i : i + 1] for column, values in batch.items()})
                except RowError as err:
                    raise BadRowError(source, row_number, err.message) from None
                except TaskhubError:
                    raise
                except Exception as row_exc:
                    raise BadRowError(source, row_number, f"cannot preprocess the row: {library_message(row_exc)}") from row_exc
            raise
