"""text_generation: continue prompts with a causal language model; train one on plain text.

Prediction follows transformers' v5 text-generation pipeline: the prompt is tokenized as
the tokenizer does by default, the model generates, and ``generated_text`` is the prompt
followed by the decoded new tokens (only the new text with ``return_full_text=false``).
Prompts of a batch are padded on the left, so batched and one-at-a-time generation agree.
Generation settings (``task.generate.*``) and sampling seeds are handled by
:class:`taskhub.generation.GenerationTask`.

Training is causal-LM training on ``text``: each text gets the end-of-sequence token,
then the texts of each encoding batch are concatenated and cut into near-equal blocks of
at most ``block_size`` tokens (``packing=true``, nothing dropped), or each text is one
example truncated to ``block_size`` tokens and padded (``packing=false``). Evaluation
reports perplexity on the held-out text: exp of the mean negative log-likelihood of its
predicted tokens (all of it over all of them). Its examples (``samples.jsonl``, the
bootstrap interval, paired tests) are the blocks, or the rows with ``packing=false``.

With no model named, a small GPT-2 is trained from scratch with a byte-level BPE
tokenizer learned from the training split (the demo data is the cooking corpus of
``plugins/data/mlm_demo``, linked from ``plugins/data/text_generation_demo`` with prompts
for ``mode=predict``); held-out perplexity is shown before and after training, and greedy
continuations of the first words of a few held-out texts are printed at the end.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional

from taskhub import RowError, TaskhubError, TaskSpec, hookimpl, option
from taskhub.generation import GenerationTask, GenerationTaskConfig
from taskhub.text import check_texts, max_tokens

log = logging.getLogger("taskhub")


@dataclass
class TextGenerationConfig(GenerationTaskConfig):
    name: str = "text_generation"
    return_full_text: bool = option(True, "Prompt + continuation (true, as the pipeline does) or only the continuation")
    stop_strings: Optional[list[str]] = option(None, "Stop generating once one of these strings is produced (kept in the output)")
    block_size: int = option(128, "Training and evaluation: tokens per block of text", ge=1)
    packing: bool = option(
        True,
        "true: concatenate the texts (each ended by the end-of-sequence token) and cut them into blocks; "
        "false: one example per text, truncated to block_size, padded",
    )
    samples: int = option(3, "After training, print the continuations of this many held-out prompts (0: none)", ge=0)
    sample_prompt_words: int = option(6, "Words of each held-out text used as the prompt of a sample", ge=1)


class TextGeneration(GenerationTask):
    """Continue text prompts with a causal language model; train one on plain text (perplexity)."""

    name = "text_generation"
    config_cls = TextGenerationConfig
    auto_model = "AutoModelForCausalLM"
    prediction_fields = ("generated_text",)
    text_field = "generated_text"
    main_metric = "perplexity"
    demo_data = "pkg://taskhub_plugins/data/text_generation_demo"
    demo_description = "Start a text and the model writes how it goes on."
    default_model_config = {
        "model_type": "gpt2",
        "n_embd": 128,
        "n_layer": 2,
        "n_head": 4,
        "n_positions": 256,
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
    }
    default_processor_config = {"algorithm": "bpe", "byte_level": True, "vocab_size": 1000, "min_frequency": 2}
    training_defaults = {
        "num_train_epochs": 15,
        "learning_rate": 2e-3,
        "per_device_train_batch_size": 16,
        "warmup_steps": 20,
        "weight_decay": 0.01,
        "prediction_loss_only": True,
    }
    evaluate_before_training = True
    #: Special tokens of a tokenizer trained from data (GPT-2's end-of-text, plus a pad token).
    special_tokens = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<pad>"}

    _training_text = False

    # ------------------------------------------------------------ settings
    def generation_defaults(self) -> dict[str, Any]:
        return {"max_new_tokens": 50}

    def user_generation_settings(self) -> dict[str, Any]:
        settings = super().user_generation_settings()
        if self.config.stop_strings:
            settings["stop_strings"] = list(self.config.stop_strings)
        return settings

    # ---------------------------------------------------------------- data
    def run_preprocess(self, batch, source, row_numbers, with_targets=False):
        # Training / evaluation text is packed into blocks; prompts are not.
        self._training_text = with_targets
        try:
            return super().run_preprocess(batch, source, row_numbers, with_targets=with_targets)
        finally:
            self._training_text = False

    def preprocess(self, batch):
        texts = check_texts(batch["text"])
        if self._training_text:
            return self._examples(texts)
        encoded = self.processor(texts)
        limit = max_tokens(self)
        if limit is not None:
            new = self.generation_config.max_new_tokens
            for i, ids in enumerate(encoded["input_ids"]):
                total = len(ids) + (new or 0)
                if total > limit:
                    raise RowError(
                        i,
                        f"the prompt is {len(ids)} tokens; with max_new_tokens={new} that is more than the "
                        f"{limit} positions the model has (shorten it or lower task.generate.max_new_tokens)",
                    )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _examples(self, texts: list[str]) -> dict[str, list]:
        size = self.config.block_size
        limit = max_tokens(self)
        if size < 2:
            raise TaskhubError(f"task.block_size={size}: use at least 2 tokens per block")
        if limit is not None and size > limit:
            raise TaskhubError(f"task.block_size={size} is more than the model's {limit} positions")
        sequences = self._sequences(texts)
        if self.config.packing:
            joined = [t for ids in sequences for t in ids]
            count = -(-len(joined) // size)
            bounds = [len(joined) * b // count for b in range(count + 1)]
            blocks = [joined[a:b] for a, b in zip(bounds, bounds[1:])]
        else:
            blocks = [ids[:size] for ids in sequences]
        return {"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks]}

    def _sequences(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids, ended by the end-of-sequence token."""
        eos = self.processor.eos_token_id
        sequences = []
        for ids in self.processor(texts, return_attention_mask=False)["input_ids"]:
            ids = list(ids)
            if eos is not None and (not ids or ids[-1] != eos):
                ids.append(eos)
            sequences.append(ids)
        return sequences

    def encode_targets(self, batch, features):
        # The targets are the text itself (the model shifts them by one position).
        return {"labels": [list(ids) for ids in features["input_ids"]]}

    # ---------------------------------------------------------- evaluation
    def preprocess_logits_for_metrics(self, logits, labels):
        """Each evaluation batch's logits -> per-token negative log-likelihoods (token t
        predicted from the ones before it), so a split's evaluation keeps N x L numbers,
        not N x L x vocabulary."""
        from taskhub.scoring import token_nll

        return token_nll(logits, labels, shift=True)

    def score_examples(self, predictions, references) -> list[dict[str, Any]]:
        """Per evaluated example, from the per-token log-likelihoods: ``nll`` (sum) and
        ``tokens`` (count), the sums behind the corpus perplexity, and its own perplexity to
        read. With ``packing`` (the default) an example is a block of the concatenated texts,
        as the model was scored on it (each row alone would be scored without the text
        before it: another metric): ``block``, the input ``rows`` it holds text of, and its
        text; without, one input row (its first ``block_size`` tokens scored)."""
        from taskhub.scoring import nll_stats, perplexity_scores, shown

        nll = predictions.predictions[0] if isinstance(predictions.predictions, tuple) else predictions.predictions
        stats = [nll_stats(row) for row in nll]
        texts = (text for columns in references.iter(batch_size=1000) for text in columns["text"])
        if not self.config.packing:
            return [
                {"row": i, "input": {"text": shown(text)}, "reference": None, "prediction": None, **perplexity_scores(s["nll"], s["tokens"])}
                for i, (s, text) in enumerate(zip(stats, texts), start=1)
            ]
        spans = self._block_rows(references)
        if len(spans) != len(stats):
            log.warning("text_generation: %d blocks evaluated, %d cut again from the rows: samples show no rows", len(stats), len(spans))
            spans = [None] * len(stats)
        examples = []
        for i, (s, labels, span) in enumerate(zip(stats, predictions.label_ids, spans)):
            ids = [int(t) for t in labels if t != -100]
            text = self.processor.decode(ids)  # the end-of-sequence tokens show where rows end
            examples.append(
                {"block": i + 1, "rows": list(span) if span else None, "input": {"text": shown(text)}, "reference": None, "prediction": None}
                | perplexity_scores(s["nll"], s["tokens"])
            )
        return examples

    def _block_rows(self, references) -> list[tuple[int, int]]:
        """The first and last input row (1-based) of each evaluation block: the blocks cut
        again from the rows, batch by batch as the split was encoded."""
        from taskhub.modes.trainer import ENCODE_BATCH_ROWS
        from taskhub.scoring import block_rows

        spans, offset = [], 0
        for columns in references.iter(batch_size=ENCODE_BATCH_ROWS):
            texts = columns["text"]
            blocks = self._examples(texts)["input_ids"]
            lengths = [len(ids) for ids in self._sequences(texts)]
            spans += [(offset + a + 1, offset + b + 1) for a, b in block_rows(lengths, [len(b) for b in blocks])]
            offset += len(texts)
        return spans

    def aggregate_examples(self, columns) -> dict[str, float]:
        """Corpus perplexity: exp(all the negative log-likelihood / all the predicted
        tokens), not a mean of the examples' perplexities."""
        from taskhub.scoring import perplexity_metrics

        return perplexity_metrics(columns)

    # ------------------------------------------------------- from scratch
    def train_processor(self, train_dataset, settings):
        from taskhub.modeling import model_source
        from taskhub.tokenizer_training import tokenizer_settings, train_tokenizer

        settings = tokenizer_settings(settings, {})
        config = model_source(self).config
        max_length = config.get("n_positions") or config.get("max_position_embeddings")
        special = dict(self.special_tokens)
        if not settings.get("byte_level"):
            special["unk_token"] = "<unk>"
        return train_tokenizer(
            train_dataset["text"], special_tokens=special, model_max_length=max_length, padding_side="left", **settings
        )

    # ------------------------------------------------------------ outputs
    def postprocess(self, outputs, batch, features) -> list[dict[str, Any]]:
        texts = self.decode(outputs)
        prompts = batch["text"]
        n = len(texts) // len(prompts)
        if self.config.return_full_text:
            texts = [prompts[i // n] + text for i, text in enumerate(texts)]
        return [{"generated_text": value} for value in self.per_row(texts, len(prompts))]

    def derived_metrics(self, metrics: dict[str, float], prefix: str) -> dict[str, float]:
        loss = metrics.get(f"{prefix}_loss")
        if loss is None:
            return {}
        try:
            return {f"{prefix}_perplexity": math.exp(loss)}
        except OverflowError:
            return {f"{prefix}_perplexity": math.inf}


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(TextGeneration.name, TextGeneration, TextGenerationConfig)]


@hookimpl
def taskhub_run_end(task, cfg, result):
    """After training, print continuations of the first words of a few held-out texts."""
    if not isinstance(task, TextGeneration) or result["mode"] != "train" or task.config.samples <= 0:
        return
    from omegaconf import OmegaConf

    from taskhub.data import read_split

    data = OmegaConf.to_object(cfg).data
    split = read_split(task, data, "test", with_targets=False, required=False) or read_split(
        task, data, "validation", with_targets=False, required=False
    )
    if split is None:
        return
    words = max(task.config.sample_prompt_words, 1)
    prompts = []
    for text in split.dataset["text"][: task.config.samples]:
        if isinstance(text, str) and text.strip():
            prompts.append(" ".join(text.split()[:words]))
    if not prompts:
        return
    lines = [f"samples (the first {words} words of {len(prompts)} {split.name} texts, continued):"]
    for record in task.predict([{"text": p} for p in prompts]):
        text = record["generated_text"]
        value = text if isinstance(text, str) else text[0]
        lines.append("  " + " ".join(value.split()))
    print("\n".join(lines), flush=True)
