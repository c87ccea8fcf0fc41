"""Shared base of the tasks whose model writes text: text_generation, summarization, translation,
image_to_text (and asr's sequence-to-sequence models).

What every generative task needs lives here once:

* **Generation settings.** ``task.generate.<field>`` sets any ``transformers.GenerationConfig``
  field (``max_new_tokens``, ``num_beams``, ``do_sample``, ``temperature``, ``top_p``,
  ``repetition_penalty``, ...). The model's own ``generation_config`` is the starting point;
  the task adds defaults only for what neither the model nor the user sets (e.g. a length
  limit); decoding is greedy unless the model or the user says otherwise. Sampling is
  seeded with the run's ``seed`` (batch ``i`` of a prediction run draws from ``seed + i``),
  so the same inputs, options and batch size give the same outputs. An unknown field is a
  one-line error listing the valid ones.
* **Batching.** Decoder-only models get their prompts padded on the left, so every row's
  continuation starts at the same position; encoder-decoder models are padded on the side
  their tokenizer says. Batched outputs equal one-at-a-time generation.
* **Decoding.** Generated ids -> text (special tokens skipped); with
  ``num_return_sequences > 1`` each record holds a list of texts.
* **Sequence-to-sequence tasks** (:class:`Seq2SeqTask`, the base of summarization and
  translation): ``text`` -> ``target`` rows, ``prefix``, source/target length limits
  (inputs are cut only where the model has no more positions; cut rows are counted and
  reported once: :class:`~taskhub.text.CountsCutTexts`), training a tokenizer on the data
  for a from-scratch model, evaluation by generating the held-out split and scoring the
  texts (the same code path as ``mode=predict``).

Like every task module, this one imports neither torch nor transformers at import time.
"""

from __future__ import annotations

import copy
import difflib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from taskhub.config import TaskConfig
from taskhub.errors import TaskhubError
from taskhub.task import Task
from taskhub.text import CountsCutTexts, check_texts, position_limit, tokenize

log = logging.getLogger("taskhub")

#: GenerationConfig attributes that are bookkeeping, not settings.
NOT_SETTINGS = frozenset({"transformers_version"})
#: Either of these limits the length; a task's default for one never overrides a set other.
LENGTH_SETTINGS = frozenset({"max_length", "max_new_tokens"})


def generation_fields() -> list[str]:
    """The settable ``transformers.GenerationConfig`` fields, sorted."""
    from transformers import GenerationConfig

    return sorted(k for k in vars(GenerationConfig()) if not k.startswith("_") and k not in NOT_SETTINGS)


def check_generate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``task.generate`` values, with a one-line error for a key GenerationConfig does not have."""
    valid = generation_fields()
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TaskhubError(
                f"task.generate.{key}: not a transformers.GenerationConfig field{hint}; valid fields: {', '.join(valid)}"
            )
    return dict(options)


class PaddingCollator:
    """Pads token-id features into tensors: ``input_ids`` with the pad id, masks with 0, on
    ``padding_side``; ``labels`` always on the right with ``label_pad_token_id`` (ignored by the loss)."""

    def __init__(self, pad_token_id: int, padding_side: str = "right", label_pad_token_id: int = -100):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.label_pad_token_id = label_pad_token_id

    def __call__(self, features: list[Mapping[str, Any]]):
        import torch

        batch = {}
        for key in features[0]:
            rows = [list(f[key]) for f in features]
            width = max(len(r) for r in rows)
            if key == "labels":
                fill, side = self.label_pad_token_id, "right"
            elif key in ("attention_mask", "token_type_ids", "decoder_attention_mask"):
                fill, side = 0, self.padding_side
            else:
                fill, side = self.pad_token_id, self.padding_side
            padded = [
                (r + [fill] * (width - len(r))) if side == "right" else ([fill] * (width - len(r)) + r) for r in rows
            ]
            batch[key] = torch.tensor(padded, dtype=torch.long)
        return batch


@dataclass
class GenerationTaskConfig(TaskConfig):
    # Any transformers.GenerationConfig field, e.g. generate.max_new_tokens=40,
    # generate.num_beams=4, generate.do_sample=true generate.top_p=0.9. Starts from the
    # model's own generation_config; greedy unless the model or you say otherwise;
    # sampling is seeded with the run's seed.
    generate: dict[str, Any] = field(default_factory=dict)


class GenerationTask(Task):
    """Base of tasks whose model generates text (``model.generate``)."""

    config_cls = GenerationTaskConfig
    modality = "text"
    processor_class = "AutoTokenizer"
    input_columns = ("text",)
    #: Encoder-decoder (AutoModelForSeq2SeqLM) or decoder-only (AutoModelForCausalLM).
    encoder_decoder: ClassVar[bool] = False
    #: The prediction field that holds the generated text.
    text_field: ClassVar[str]
    demo_output = "text"
    compiles_forward = False  # model.generate stays eager under model.compile

    def __init__(self, config=None, model=None, device: str = "auto"):
        super().__init__(config, model, device)
        check_generate_options(self.config.generate)
        self._generation: tuple[Any, Any] | None = None
        self._batches = 0
        self._source = "input"

    # -------------------------------------------------------------- settings
    def generation_defaults(self) -> dict[str, Any]:
        """Settings the task adds where neither the model's generation config nor the
        user sets them (a length limit one of LENGTH_SETTINGS counts as set for both)."""
        return {}

    def user_generation_settings(self) -> dict[str, Any]:
        """What the user asked for: ``task.generate`` (subclasses add their own options)."""
        return dict(self.config.generate)

    @property
    def generation_config(self):
        """The ``GenerationConfig`` every ``generate`` call of this task uses."""
        model = self.model
        if self._generation is None or self._generation[0] is not model:
            self._generation = (model, self.build_generation_config(model))
        return self._generation[1]

    def build_generation_config(self, model):
        config = copy.deepcopy(model.generation_config)
        user = self.user_generation_settings()
        given = set(config.to_diff_dict()) | set(user)
        added = {}
        for key, value in self.generation_defaults().items():
            if key in given or (key in LENGTH_SETTINGS and given & LENGTH_SETTINGS):
                continue
            added[key] = value
        if config.pad_token_id is None and "pad_token_id" not in user:
            added["pad_token_id"] = self.pad_token_id
        config.update(**added, **user)
        try:
            config.validate(strict=True, user_set_attributes=set(user))
        except ValueError as exc:
            issues = [line[2:].strip() for line in str(exc).splitlines() if line.startswith("- ")]
            detail = " ".join(issues) or " ".join(str(exc).split())
            raise TaskhubError(f"task.generate: {detail}") from None
        return config

    @property
    def tokenizer(self):
        """The tokenizer that encodes targets and decodes generated ids: the processor itself,
        or the tokenizer of a processor that pairs one with an image processor (image_to_text)."""
        processor = self.processor
        tokenizer = getattr(processor, "tokenizer", None)
        return processor if tokenizer is None else tokenizer

    @property
    def pad_token_id(self) -> int:
        """The id padding uses: the tokenizer's pad token, else its end-of-sequence token."""
        tokenizer = self.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise TaskhubError(f"the tokenizer ({type(tokenizer).__name__}) has neither a pad nor an end-of-sequence token")
        return pad

    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        """A model built from a config takes its vocabulary size and special token ids
        from the tokenizer trained on the data; a named model keeps its own."""
        from taskhub.modeling import model_source

        if model_source(self).name_or_path is not None:
            return {}
        tokenizer = self.tokenizer
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
        return {"vocab_size": len(tokenizer), **{k: v for k, v in ids.items() if v is not None}}

    # -------------------------------------------------------------- batching
    @property
    def padding_side(self) -> str:
        """Where prompts are padded for generation: left for decoder-only models, else the tokenizer's side."""
        if not self.encoder_decoder:
            return "left"
        return "left" if self.processor.padding_side == "left" else "right"

    def build_collator(self):
        return PaddingCollator(self.pad_token_id, self.padding_side)

    def build_training_collator(self):
        # Training pads on the right for decoder-only models (positions count from the
        # first real token), labels always on the right with -100.
        side = self.padding_side if self.encoder_decoder else "right"
        return PaddingCollator(self.pad_token_id, side)

    # ------------------------------------------------------------- inference
    def predict_iter(self, records, batch_size: int = 32, source: str = "input", **engine):
        self._batches = 0
        self._source = source
        return super().predict_iter(records, batch_size=batch_size, source=source, **engine)

    def _forward(self, inputs):
        import torch

        config = self.generation_config
        kwargs = {"tokenizer": self.processor} if config.stop_strings else {}
        batch_index = self._batches
        self._batches += 1
        inputs = {k: v for k, v in inputs.items() if k != "labels"}
        if config.do_sample:
            device = self.model.device
            devices = [device.index or 0] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed + batch_index)
                output = self.model.generate(**inputs, generation_config=config, **kwargs)
        else:
            output = self.model.generate(**inputs, generation_config=config, **kwargs)
        sequences = getattr(output, "sequences", output)
        # Decoder-only models return the prompt too; encoder-decoder inputs may be no tokens at all (images).
        input_length = inputs["input_ids"].shape[-1] if "input_ids" in inputs else 0
        return {"sequences": sequences.cpu(), "input_length": input_length}

    def decode(self, outputs) -> list[str]:
        """Generated texts, one per returned sequence: the new tokens only, special tokens skipped."""
        sequences = outputs["sequences"]
        if not self.encoder_decoder:
            sequences = sequences[:, outputs["input_length"] :]
        return self.tokenizer.batch_decode(sequences.tolist(), skip_special_tokens=True)

    # ------------------------------------------------------------- metrics
    def text_scores(self, predictions: list[str], references: list[str]) -> list[dict[str, Any]]:
        """Per generated text against its reference: ``scores`` (and ``stats`` for corpus
        metrics) as :meth:`~taskhub.task.Task.score_examples` returns them."""
        raise NotImplementedError

    def generated_text_examples(self, predictions, references, column: str) -> list[dict[str, Any]]:
        """:meth:`~taskhub.task.Task.score_examples` of a task scored by generating: the
        :meth:`text_scores` of each row's first generated text against its reference in
        ``column``, plus its length in tokens (``gen_len``)."""
        targets = list(references[column])
        for i, target in enumerate(targets):
            if not isinstance(target, str) or not target.strip():
                raise TaskhubError(f"{self._source}, row {i + 1}: missing or empty '{column}'")
        texts = [p[self.text_field] for p in predictions]
        first = [t[0] if isinstance(t, list) else t for t in texts]
        examples = self.text_scores(first, targets)
        for example, ids in zip(examples, self.tokenizer(first, add_special_tokens=False)["input_ids"]):
            example["scores"]["gen_len"] = float(len(ids))
        return examples

    @staticmethod
    def per_row(texts: list, rows: int) -> list:
        """One entry per row: the text, or the row's list of ``num_return_sequences`` texts."""
        if rows == 0:
            return []
        n = len(texts) // rows
        if n == 1:
            return list(texts)
        return [list(texts[i * n : (i + 1) * n]) for i in range(rows)]

    def postprocess(self, outputs, batch, features) -> list[dict[str, Any]]:
        texts = self.per_row(self.decode(outputs), len(batch[self.input_columns[0]]))
        return [{self.text_field: text} for text in texts]


# --------------------------------------------------------------------- seq2seq
@dataclass
class Seq2SeqConfig(GenerationTaskConfig):
    # Put before every input text, e.g. "summarize: " for T5. None: the prefix the
    # model's config names for the task (T5's task_specific_params), else none.
    prefix: Optional[str] = None
    # Inputs are cut to max_source_length tokens (None: the model's position limit, no cut
    # for models without one such as T5), targets to max_target_length; a run that cuts
    # says how many. Generation stops after max_target_length new tokens unless the model
    # or task.generate sets a length.
    max_source_length: Optional[int] = None
    max_target_length: int = 128


#: Special tokens of a tokenizer trained from data for a from-scratch seq2seq model (T5's ids).
SEQ2SEQ_SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


class Seq2SeqTask(CountsCutTexts, GenerationTask):
    """Base of text -> text tasks with an encoder-decoder model (summarization, translation)."""

    config_cls = Seq2SeqConfig
    encoder_decoder = True
    auto_model = "AutoModelForSeq2SeqLM"
    target_columns = ("target",)
    evaluate_by_prediction = True
    #: With no model named: a tiny T5 trained from scratch with a tokenizer trained on the data.
    default_model_config = {
        "model_type": "t5",
        "d_model": 64,
        "d_kv": 16,
        "d_ff": 256,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "num_heads": 4,
        "dropout_rate": 0.0,
        "feed_forward_proj": "relu",
        "tie_word_embeddings": True,
    }
    default_processor_config = {"algorithm": "bpe", "vocab_size": 2000, "min_frequency": 2}
    training_defaults = {"prediction_loss_only": True}
    #: The model config's ``task_specific_params`` entry for this task (T5 checkpoints have them).
    task_params_key: ClassVar[str] = ""

    # ----------------------------------------------------------- settings
    def task_specific_params(self) -> dict[str, Any]:
        params = getattr(self.model.config, "task_specific_params", None) or {}
        return dict(params.get(self.task_params_key, {})) if self.task_params_key else {}

    @property
    def prefix(self) -> str:
        if self.config.prefix is not None:
            return self.config.prefix
        model_prefix = getattr(self.model.config, "prefix", None)
        if model_prefix:
            return model_prefix
        return self.task_specific_params().get("prefix") or ""

    def generation_defaults(self) -> dict[str, Any]:
        valid = set(generation_fields())
        defaults = {k: v for k, v in self.task_specific_params().items() if k in valid}
        if not defaults.keys() & LENGTH_SETTINGS:
            defaults["max_new_tokens"] = self.config.max_target_length
        return defaults

    def prepare_tokenizer(self) -> None:
        """Set up the tokenizer before encoding (e.g. source/target languages)."""

    # ---------------------------------------------------------------- data
    def preprocess(self, batch):
        """Prefixed texts -> token ids, cut only where the model cannot take more (or at
        ``max_source_length``): the v4 pipelines did not cut at all."""
        texts = check_texts(batch["text"])
        self.prepare_tokenizer()
        prefix = self.prefix
        limit = self.config.max_source_length or position_limit(self.model_settings)
        encoded, cut = tokenize(self.processor, limit, [prefix + text for text in texts])
        if limit is not None:
            named = f"task.max_source_length={limit}" if self.config.max_source_length else f"the model's {limit}-token limit"
            self.note_cut(cut, "inputs", named)
        return {k: encoded[k] for k in ("input_ids", "attention_mask") if k in encoded}

    def encode_targets(self, batch, features):
        targets = check_texts(batch["target"], "target")
        self.prepare_tokenizer()
        limit = self.config.max_target_length
        encoded, cut = tokenize(self.processor, limit, text_target=targets)
        self.note_cut(cut, "targets", f"task.max_target_length={limit}")
        return {"labels": encoded["input_ids"]}

    # ------------------------------------------------------- from scratch
    def train_processor(self, train_dataset, settings):
        from taskhub.tokenizer_training import tokenizer_settings, train_tokenizer

        settings = tokenizer_settings(settings, {})
        texts = [*train_dataset["text"], *train_dataset["target"]]
        if self.config.prefix:
            texts.append(self.config.prefix)
        return train_tokenizer(texts, special_tokens=SEQ2SEQ_SPECIAL_TOKENS, append_eos=True, **settings)

    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        config = super().model_init_kwargs(train_dataset)
        if config:  # T5 starts decoding from the pad token
            config["decoder_start_token_id"] = self.processor.pad_token_id
        return config

    # ------------------------------------------------------------- metrics
    def score_examples(self, predictions, references) -> list[dict[str, Any]]:
        """The task's :meth:`text_scores` of each first generated text, plus its length in tokens."""
        return self.generated_text_examples(predictions, references, "target")
