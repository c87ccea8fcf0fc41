"""Length-aware batching for inference: the part of the engine that decides which rows share a batch.

Padding a batch to its longest member wastes the compute spent on the shorter ones;
transformers' pipelines batch rows in input order, which on mixed-length inputs makes
batching slower than no batching at all. Here the rows of a chunk are sorted by length,
cut into batches capped by a row count *and* a padded-token budget, and the results are
put back in input order by the caller.

A row may have several features (windows of a long text, chunks of a long recording):
its features always stay together in one batch, and a row's cost is its longest feature.
Pure Python, no torch: unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Feature keys starting with this carry side information for a task's postprocess or
#: encode_targets (offsets, word ids, ...) and never reach the model.
SIDE_PREFIX = "_"
#: Side feature mapping each feature to the index of its row in the batch, for tasks
#: whose preprocessing splits one row into several windows. Absent: one feature per row.
ROW_KEY = "_row"


def model_inputs(features: Mapping[str, list]) -> dict[str, list]:
    """The features the model takes: all but the ``_``-prefixed side information."""
    return {k: v for k, v in features.items() if not k.startswith(SIDE_PREFIX)}


def features_per_row(features: Mapping[str, list], rows: int) -> list[list[int]]:
    """Indices of each row's features: several per row with :data:`ROW_KEY`, else one each."""
    if ROW_KEY not in features:
        return [[i] for i in range(rows)]
    owned: list[list[int]] = [[] for _ in range(rows)]
    for index, row in enumerate(features[ROW_KEY]):
        owned[row].append(index)
    return owned


def plan_batches(
    lengths: Sequence[int],
    sizes: Sequence[int],
    max_rows: int,
    max_tokens: int | None = None,
    sort: bool = True,
) -> list[list[int]]:
    """Group rows into batches.

    ``lengths[r]`` is row ``r``'s longest feature, ``sizes[r]`` its number of features.
    A batch holds at most ``max_rows`` features and, with ``max_tokens``, at most that
    many padded positions (longest length x features); a row that alone exceeds a cap
    gets a batch of its own. With ``sort``, rows are taken shortest first (stable), so
    each batch pads little; otherwise in input order.
    """
    if max_rows < 1:
        raise ValueError(f"batch size must be at least 1, not {max_rows}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
    order = sorted(range(len(lengths)), key=lengths.__getitem__) if sort else range(len(lengths))
    batches: list[list[int]] = []
    current: list[int] = []
    count = longest = 0
    for row in order:
        size, length = sizes[row], lengths[row]
        grown_count, grown_longest = count + size, max(longest, length)
        too_many = grown_count > max_rows
        too_big = max_tokens is not None and grown_longest * grown_count > max_tokens
        if current and (too_many or too_big):
            batches.append(current)
            current, count, longest = [], 0, 0
            grown_count, grown_longest = size, length
        current.append(row)
        count, longest = grown_count, grown_longest
    if current:
        batches.append(current)
    return batches


def select(batch: Mapping[str, list], features: Mapping[str, list], owned: list[list[int]], rows: list[int]):
    """The sub-batch of ``rows``: their raw columns and their features, with
    :data:`ROW_KEY` renumbered to positions in the sub-batch."""
    sub_batch = {column: [values[r] for r in rows] for column, values in batch.items()}
    picked = [index for r in rows for index in owned[r]]
    sub_features: dict[str, Any] = {key: [values[i] for i in picked] for key, values in features.items() if key != ROW_KEY}
    if ROW_KEY in features:
        sub_features[ROW_KEY] = [position for position, r in enumerate(rows) for _ in owned[r]]
    return sub_batch, sub_features
