"""Text helpers shared by the text tasks: long inputs as overlapping token windows (ner,
qa), the models' length limits, and texts cut to a limit counted and reported once
(text_classification, summarization, translation)."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from taskhub.errors import RowError, TaskhubError
from taskhub.task import ROW_KEY

log = logging.getLogger("taskhub")


def tokenize_windows(tokenizer, texts, pairs=None, *, max_length: int | None, stride: int, truncation="longest_first", is_split_into_words: bool = False):
    """Tokenize rows into windows of at most ``max_length`` tokens overlapping by ``stride``.

    Returns features: the tokenizer's model inputs, :data:`~taskhub.task.ROW_KEY`
    (window -> row), and side information ``_offsets`` (character offsets per token,
    into the text or the pair text), ``_sequence_ids`` (0 text, 1 pair, None special
    token) and ``_word_ids``.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TaskhubError(f"this task needs a fast tokenizer for character offsets; {type(tokenizer).__name__} is not one")
    max_length = max_length or tokenizer.model_max_length
    encoded = tokenizer(
        texts,
        pairs,
        truncation=truncation,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        is_split_into_words=is_split_into_words,
    )
    windows = range(len(encoded["input_ids"]))
    features = {k: encoded[k] for k in tokenizer.model_input_names if k in encoded}
    features[ROW_KEY] = encoded["overflow_to_sample_mapping"]
    features["_offsets"] = [[tuple(span) for span in offsets] for offsets in encoded["offset_mapping"]]
    features["_sequence_ids"] = [encoded.sequence_ids(i) for i in windows]
    features["_word_ids"] = [encoded.word_ids(i) for i in windows]
    return features


def check_texts(values: list, column: str = "text", optional: bool = False) -> list:
    """The batch's texts; a missing (unless ``optional``), non-string or blank one is an
    error for its row."""
    for i, value in enumerate(values):
        if value is None:
            if optional:
                continue
            raise RowError(i, f"missing '{column}'")
        if not isinstance(value, str):
            raise RowError(i, f"'{column}' must be a string, not {type(value).__name__}")
        if not value.strip():
            raise RowError(i, f"empty '{column}'")
    return values


def max_tokens(task) -> int | None:
    """The longest input both the task's tokenizer and its model take (None: neither
    states a limit). A tokenizer's ``model_max_length`` can exceed the model's position
    table (a small model built from a config, a tokenizer saved without a limit: "1e30"),
    and longer inputs would crash the model."""
    limits = [limit for limit in (sane_limit(task.processor.model_max_length), position_limit(task.model_settings)) if limit]
    return min(limits) if limits else None


#: Model config keys that bound the input length (absolute position tables).
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_encoder_position_embeddings")


def position_limit(config) -> int | None:
    """The most input positions the model has; None when it states no limit (T5's
    relative positions take any length)."""
    limits = [limit for key in POSITION_KEYS if (limit := sane_limit(getattr(config, key, None)))]
    return min(limits) if limits else None


def sane_limit(value) -> int | None:
    """A stated length limit; None for none or a placeholder (a tokenizer saved without one: "1e30")."""
    return int(value) if isinstance(value, (int, float)) and 0 < value < 1_000_000 else None


# ------------------------------------------------------------------ cut texts
def tokenize(tokenizer, max_length: int | None, *args, **kwargs):
    """``tokenizer(*args, **kwargs)`` with the texts cut to ``max_length`` tokens (None: not
    cut) -> (the encoding, the positions of the rows that were cut)."""
    if max_length is None:
        return tokenizer(*args, **kwargs), []
    encoded = tokenizer(*args, truncation=True, max_length=max_length, **kwargs)
    if encoded.encodings is not None:  # a fast tokenizer keeps what it cut off
        return encoded, [i for i, encoding in enumerate(encoded.encodings) if encoding.overflowing]
    whole = tokenizer(*args, **kwargs)["input_ids"]
    return encoded, [i for i, ids in enumerate(whole) if len(ids) > max_length]


class CountsCutTexts:
    """Mixin of text tasks that cut texts longer than a token limit (put it before the
    task base class). Cutting changes the output, so it is never silent: ``preprocess``
    tells :meth:`note_cut` which rows it cut, and each predict call (or
    :func:`reporting_cuts` block) ends with one warning per file counting them. Only a
    batch preprocessed successfully is counted (a chunk that failed on a bad row and is
    retried without it counts once), and only as two numbers: memory does not grow with
    the input."""

    #: While a report is open: (file, what, limit) -> [rows cut, rows seen].
    _cut_tally: dict | None = None
    #: During :meth:`run_preprocess`: what ``preprocess`` cut, per :meth:`note_cut` call.
    _cut_in_batch: list | None = None

    def note_cut(self, indices, what: str, limit: str) -> None:
        """In ``preprocess``, whenever texts go through a limit: the batch's rows at
        ``indices`` (maybe none) were cut; ``what`` they are ("inputs", "targets") and the
        ``limit`` ("the model's 512-token limit"). Not counted when preprocess is called alone."""
        if self._cut_in_batch is not None:
            self._cut_in_batch.append((list(indices), what, limit))

    def run_preprocess(self, batch, source, row_numbers, with_targets=False):
        self._cut_in_batch = notes = []
        try:
            features = super().run_preprocess(batch, source, row_numbers, with_targets=with_targets)
        finally:
            self._cut_in_batch = None
        cut_here: dict[tuple, set] = {}  # a batch may note one limit several times (pairs, then singles)
        for indices, what, limit in notes:
            cut_here.setdefault((source, what, limit), set()).update(indices)
        with reporting_cuts(self) as tally:  # outside a predict call: this batch's own report
            for key, indices in cut_here.items():
                counts = tally.setdefault(key, [0, 0])
                counts[0] += len(indices)
                counts[1] += len(row_numbers)
        return features

    def predict_iter(self, records, *args, **kwargs):
        with reporting_cuts(self):
            yield from super().predict_iter(records, *args, **kwargs)


@contextmanager
def reporting_cuts(task):
    """Count the rows ``task`` (a :class:`CountsCutTexts`) cuts while the block runs and
    say so once when it ends, with the count; inside an open report, join it. A task
    that cuts nothing reports nothing."""
    if getattr(task, "_cut_tally", None) is not None:
        yield task._cut_tally
        return
    tally = task._cut_tally = {}
    try:
        yield tally
    finally:
        task._cut_tally = None
    for (source, what, limit), (cut, seen) in tally.items():
        if cut:
            log.warning("%s: %d of %d %s were longer than %s and were cut", source, cut, seen, what, limit)
