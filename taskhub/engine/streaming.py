"""The in-process predict stream: records in, one result per record out, in input order.

Records are read a chunk at a time, so memory does not grow with the input. A chunk's
rows are preprocessed together, planned into length-sorted batches
(:func:`~taskhub.engine.batching.plan_batches`), run through the model and put back in
order. A bad row stops the stream with its file and row, or with ``skip`` becomes a
:class:`~taskhub.errors.RowFailure` in its place. The task supplies the steps
(``run_preprocess``, ``feature_length``, ``collator``, ``forward``, ``postprocess``); this
module supplies the order they run in, for any task.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskhub.engine.batching import features_per_row, model_inputs, plan_batches, select
from taskhub.errors import BadRowError, RowFailure

if TYPE_CHECKING:
    from taskhub.task import Task


def stream(
    task: Task,
    records: Iterable[Mapping[str, Any]],
    source: str,
    *,
    batch_size: int,
    max_tokens: int | None,
    sort_by_length: bool,
    chunk_size: int,
    skip: bool,
    first_row: int,
    overlap: bool,
) -> Iterator[dict | RowFailure]:
    """Predictions for ``records`` (canonical column names), in order. ``first_row`` is the
    input position of the first record (row numbers when resuming). With ``overlap`` the
    next chunk is read and preprocessed in a worker thread while this one runs through
    the model (decoding releases the GIL, and so do torch's kernels)."""
    chunks = _chunks(records, chunk_size, first_row)

    def prepare(chunk):
        return _prepare_chunk(task, chunk[1], chunk[0], source, batch_size, max_tokens, sort_by_length, skip) if chunk else None

    if not overlap:
        for chunk in chunks:
            yield from _run_chunk(task, prepare(chunk))
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="taskhub-preprocess") as pool:
        pending = pool.submit(lambda: prepare(next(chunks, None)))
        while (prepared := pending.result()) is not None:
            pending = pool.submit(lambda: prepare(next(chunks, None)))
            yield from _run_chunk(task, prepared)


@dataclass
class _PreparedChunk:
    results: list  # per row: a RowFailure already, or None until predicted
    live: list[int]  # rows that preprocessed, in order
    batch: dict[str, list]  # their raw columns
    features: dict[str, list]
    owned: list[list[int]]  # per live row: its features
    plan: list[list[int]]  # batches of live rows


def _chunks(records: Iterable[Mapping[str, Any]], size: int, start: int) -> Iterator[tuple[int, list]]:
    """``(input position of the first row, rows)`` for consecutive runs of ``size`` records."""
    chunk: list[Mapping[str, Any]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield start, chunk
            start, chunk = start + size, []
    if chunk:
        yield start, chunk


def _prepare_chunk(task: Task, rows, start: int, source: str, batch_size, max_tokens, sort_by_length, skip: bool) -> _PreparedChunk:
    """A chunk's rows preprocessed and planned into batches (no model call)."""
    results: list[dict | RowFailure | None] = [None] * len(rows)
    live = []
    for i, row in enumerate(rows):
        missing = [c for c in task.input_columns if c not in row]
        if not missing:
            live.append(i)
            continue
        failure = BadRowError(source, start + i + 1, f"missing required column '{missing[0]}' (columns found: {', '.join(row) or 'none'})")
        if not skip:
            raise failure
        results[i] = RowFailure(start + i, failure.reason)
    columns = [c for c in task.input_columns + task.optional_columns if any(c in rows[i] for i in live)]
    batch, features = {}, {}
    while live:  # each bad row found is set aside and the rest preprocessed again
        batch = {c: [rows[i].get(c) for i in live] for c in columns}
        try:
            features = task.run_preprocess(batch, source, row_numbers=[start + i + 1 for i in live])
            break
        except BadRowError as err:
            if not skip:
                raise
            bad = err.row_number - start - 1
            results[bad] = RowFailure(start + bad, err.reason)
            live.remove(bad)
    owned = features_per_row(features, len(live)) if live else []
    lengths = [max((task.feature_length(features, i) for i in indices), default=0) for indices in owned]
    plan = plan_batches(lengths, [len(o) for o in owned], batch_size, max_tokens, sort=sort_by_length) if live else []
    return _PreparedChunk(results, live, batch, features, owned, plan)


def _run_chunk(task: Task, chunk: _PreparedChunk) -> list[dict | RowFailure]:
    results = chunk.results
    for group in chunk.plan:
        sub_batch, sub_features = select(chunk.batch, chunk.features, chunk.owned, group)
        inputs = model_inputs(sub_features)
        size = len(next(iter(inputs.values())))
        outputs = task.forward(task.collator([{k: v[i] for k, v in inputs.items()} for i in range(size)]))
        records = task.postprocess(outputs, sub_batch, sub_features)
        if len(records) != len(group):
            raise RuntimeError(f"{type(task).__name__}.postprocess returned {len(records)} records for {len(group)} rows")
        for position, record in zip(group, records):
            results[chunk.live[position]] = record
    return results
