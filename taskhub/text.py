"""Text helpers shared by span tasks (ner, qa): long inputs as overlapping token windows."""

from __future__ import annotations

from taskhub.errors import RowError, TaskhubError
from taskhub.task import ROW_KEY


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


def check_texts(values: list, column: str = "text") -> list[str]:
    """The batch's texts; a missing, non-string or blank one is an error for its row."""
    for i, value in enumerate(values):
        if value is None:
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
    candidates = [task.processor.model_max_length]
    candidates += [getattr(task.model.config, key, None) for key in ("max_position_embeddings", "n_positions")]
    limits = [int(c) for c in candidates if isinstance(c, (int, float)) and 0 < c < 1_000_000]
    return min(limits) if limits else None
