"""Tokenizers trained on a task's training split, for models built from scratch.

A model built from ``model.config`` alone has no tokenizer to load; a task's
:meth:`~taskhub.task.Task.train_processor` can call :func:`train_tokenizer` to learn
one from the training texts with the ``tokenizers`` library. The result is a
``transformers`` fast tokenizer, saved with the model (``tokenizer.json``), so the
trained model reloads and runs offline like any checkpoint.

Settings come from ``model.processor.<key>`` (over the task's defaults):

* ``algorithm``: ``bpe`` | ``unigram`` | ``wordpiece`` | ``wordlevel``
* ``vocab_size``: the most tokens to learn (special tokens included)
* ``min_frequency``: pieces seen fewer times are not merged / kept (bpe, wordpiece, wordlevel)
* ``lowercase``: lowercase every text first
* ``byte_level``: GPT-2 style byte-level pre-tokenization (bpe only): any text, no unknown token

Without ``byte_level``, words are split off at spaces (kept as a ``▁`` prefix, as
SentencePiece does, so decoding restores the spacing exactly), punctuation is
isolated and digits are single tokens (so any number can be written).

This module imports ``tokenizers`` and ``transformers`` only inside functions.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

from taskhub.errors import TaskhubError

ALGORITHMS = ("bpe", "unigram", "wordpiece", "wordlevel")
SETTINGS = {
    "algorithm": str,
    "vocab_size": int,
    "min_frequency": int,
    "lowercase": bool,
    "byte_level": bool,
}
#: Characters always in the alphabet of non-byte-level tokenizers, seen in training or not.
BASE_ALPHABET = string.ascii_letters + string.digits + string.punctuation


def tokenizer_settings(given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``given`` (the ``model.processor`` values), checked."""
    settings = {**defaults, **given}
    for key, value in settings.items():
        if key not in SETTINGS:
            raise TaskhubError(
                f"model.processor.{key}: not a setting of a tokenizer trained from data "
                f"(settings: {', '.join(SETTINGS)}; or set model.processor.processor_class to build a processor class instead)"
            )
        kind = SETTINGS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TaskhubError(f"model.processor.{key}={value!r}: expected {kind.__name__}")
    if settings.get("algorithm", "bpe") not in ALGORITHMS:
        raise TaskhubError(f"model.processor.algorithm={settings['algorithm']!r}: use one of {', '.join(ALGORITHMS)}")
    if settings.get("byte_level") and settings.get("algorithm", "bpe") != "bpe":
        raise TaskhubError("model.processor.byte_level=true needs model.processor.algorithm=bpe")
    if settings.get("vocab_size", 1) < 1 or settings.get("min_frequency", 1) < 1:
        raise TaskhubError("model.processor.vocab_size and model.processor.min_frequency must be at least 1")
    return settings


def train_tokenizer(
    texts: Iterable[str],
    *,
    special_tokens: Mapping[str, str],
    algorithm: str = "bpe",
    vocab_size: int = 4000,
    min_frequency: int = 2,
    lowercase: bool = False,
    byte_level: bool = False,
    append_eos: bool = False,
    model_max_length: int | None = None,
    padding_side: str = "right",
):
    """Learn a tokenizer from ``texts``; returns a ``transformers`` fast tokenizer.

    ``special_tokens`` maps roles to tokens, e.g. ``{"pad_token": "<pad>", "eos_token": "</s>",
    "unk_token": "<unk>"}``; they get the first ids, in the given order (roles sharing a
    token share the id). ``append_eos`` adds the end-of-sequence token to every encoded
    text (and to both texts of a pair), as T5's tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    unique = list(dict.fromkeys(special_tokens.values()))
    unk = special_tokens.get("unk_token")
    if algorithm not in ALGORITHMS:
        raise TaskhubError(f"tokenizer algorithm {algorithm!r}: use one of {', '.join(ALGORITHMS)}")
    if byte_level and algorithm != "bpe":
        raise TaskhubError("a byte-level tokenizer must use the bpe algorithm")
    if unk is None and not byte_level:
        raise TaskhubError("a tokenizer that is not byte-level needs an unk_token")

    if byte_level:
        model = models.BPE()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=unique,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    elif algorithm == "bpe":
        model = models.BPE(unk_token=unk)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=unique,
            initial_alphabet=list(BASE_ALPHABET),
            show_progress=False,
        )
    elif algorithm == "unigram":
        model = models.Unigram()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=unique,
            unk_token=unk,
            initial_alphabet=list(BASE_ALPHABET),
            show_progress=False,
        )
    elif algorithm == "wordpiece":
        # Word starts carry the "▁" of the pre-tokenizer, so continuations need no "##".
        model = models.WordPiece(unk_token=unk, continuing_subword_prefix="")
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=unique,
            initial_alphabet=list(BASE_ALPHABET),
            continuing_subword_prefix="",
            show_progress=False,
        )
    else:
        model = models.WordLevel(unk_token=unk)
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=unique, show_progress=False
        )

    tokenizer = Tokenizer(model)
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    if byte_level:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
                pre_tokenizers.Punctuation("isolated"),
                pre_tokenizers.Digits(individual_digits=True),
            ]
        )
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")

    texts = (t for t in texts if isinstance(t, str) and t)
    tokenizer.train_from_iterator(texts, trainer)
    if append_eos:
        eos = special_tokens.get("eos_token")
        if eos is None:
            raise TaskhubError("append_eos needs an eos_token")
        eos_id = tokenizer.token_to_id(eos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, eos_id)]
        )
    # The decoders restore the spacing exactly: no clean-up of spaces before punctuation.
    kwargs: dict[str, Any] = {**special_tokens, "clean_up_tokenization_spaces": False}
    if model_max_length:
        kwargs["model_max_length"] = model_max_length
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, padding_side=padding_side, **kwargs)
