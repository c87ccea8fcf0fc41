"""Padding features into batches, for every shape a task's preprocess makes.

Most tasks make one token sequence per feature and transformers' own collators pad it.
Some make several per feature: a question with N answer choices (N varying per row), a
premise against N hypotheses. :class:`NestedPadding` batches those as ``(batch, N, length)``
tensors, padding the choices a row lacks with a filler and saying which are real in a
``choice_mask`` side input, so a plugin writes no collator of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: Side input :class:`NestedPadding` adds: True for a row's real choices, False for fillers.
CHOICE_MASK = "choice_mask"
#: The features a tokenizer pads.
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def is_nested(value: Any) -> bool:
    """A value that is a list of lists or arrays (several sequences, or an image's rows:
    only the task knows which; see :attr:`taskhub.Task.nested_features`)."""
    return isinstance(value, (list, tuple)) and bool(value) and (isinstance(value[0], (list, tuple)) or getattr(value[0], "ndim", 0) >= 1)


def nested_cost(value: Sequence[Sequence[Any]]) -> int:
    """Positions several sequences take once padded: their count times the longest (what
    length batching should weigh, not the count alone)."""
    return len(value) * max((len(v) for v in value), default=0)


class NestedPadding:
    """A collator for features where some keys (``nested_keys``, which a task declares:
    an image's channels or a label map are arrays of arrays too) hold several sequences
    per row.

    The nested keys of every row are flattened into one list of ordinary features,
    padded by ``flat`` (the task's usual collator, e.g. the tokenizer's padding), and
    reshaped to ``(rows, most choices, length)``; rows with fewer choices get copies of
    their first choice as fillers, marked False in :data:`CHOICE_MASK`. The other keys
    (labels, side inputs of one value per row) are stacked by transformers'
    ``default_data_collator``.
    """

    def __init__(self, flat: Callable[[list[dict[str, Any]]], Mapping[str, Any]], nested_keys: Sequence[str]):
        self.flat = flat
        self.nested_keys = tuple(nested_keys)

    def __call__(self, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        nested = tuple(key for key in self.nested_keys if key in rows[0])
        if not nested:
            return dict(self.flat([dict(row) for row in rows]))
        counts = [len(row[nested[0]]) for row in rows]
        for row in rows:
            if any(len(row[key]) != len(row[nested[0]]) for key in nested):
                raise ValueError(f"features {', '.join(nested)} have different numbers of choices in one row")
        most = max(counts)
        flattened = [
            {key: row[key][choice if choice < count else 0] for key in nested}
            for row, count in zip(rows, counts)
            for choice in range(most)
        ]
        batch = {key: value.view(len(rows), most, *value.shape[1:]) for key, value in self.flat(flattened).items()}
        rest = [{k: v for k, v in row.items() if k not in nested} for row in rows]
        if rest[0]:
            from transformers import default_data_collator

            batch.update(default_data_collator(rest))
        batch[CHOICE_MASK] = torch.tensor([[choice < count for choice in range(most)] for count in counts])
        return batch


class TokensAndArrays:
    """A collator for features holding token sequences beside fixed-size arrays (an image's
    ``pixel_values`` with its caption, or with several prompts): the :data:`TOKEN_KEYS`
    padded by the tokenizer, the other arrays stacked; a row of several sequences goes
    through :class:`NestedPadding`. Told apart by the token ids, not by shape alone: pixel
    values read back from Arrow are nested lists too."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        ids = rows[0].get("input_ids")
        nested = tuple(k for k in TOKEN_KEYS if k in rows[0]) if ids is not None and is_nested(ids) else ()
        return NestedPadding(self._pad, nested_keys=nested)(rows)

    def _pad(self, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        from transformers import default_data_collator

        tokens = [{k: row[k] for k in TOKEN_KEYS if k in row} for row in rows]
        rest = [{k: v for k, v in row.items() if k not in TOKEN_KEYS} for row in rows]
        batch = dict(default_data_collator(rest)) if rest[0] else {}
        if tokens[0]:
            batch.update(self.tokenizer.pad(tokens, padding=True, return_tensors="pt"))
        return batch
