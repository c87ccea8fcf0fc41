"""zero_shot_image_classification: choose among labels given at run time for an image,
with a CLIP-style image-text model.

The transformers ``zero-shot-image-classification`` pipeline's contract: each candidate
label becomes a prompt (``hypothesis_template``, default "This is a photo of {}."), the
model (``AutoModelForZeroShotImageClassification``: CLIP, SigLIP, ...) scores the image
against every prompt (``logits_per_image``), and the scores are their softmax (SigLIP:
each one's sigmoid, prompts padded to 64 tokens, as the pipeline does). Output fields as
the pipeline's records, one list each, best first: ``label`` (the candidate labels) and
``score``; ``task.top_k`` keeps the best k.

The candidates come per row (a ``candidate_labels`` column: a list, or one
comma-separated string) or for the whole run (``task.candidate_labels=[cat,dog]``; a
row's own list wins), or per call from Python: ``task(image, candidate_labels=[...])``
(``task.predict([{"image": ...}], candidate_labels=[...])``). Each row's prompts travel
as nested token features (the core pads them to rows x most candidates x tokens, with a
``choice_mask``); :meth:`ZeroShotImageClassification.call_model` runs each distinct
prompt of the batch once through the text tower and picks every row's candidates out of
the model's ``logits_per_image``.

Two kinds of rows:

* **Training**: ``image`` + ``text`` (its caption). The model learns with its own
  contrastive loss (CLIP's symmetric in-batch cross-entropy: ``return_loss=True``), through
  :meth:`~ZeroShotImageClassification.call_model`; no Trainer subclass. Larger batches give
  more negatives per image. A batch holding the same caption twice counts one copy as the
  other's negative (the loss CLIP has).
* **Evaluation**: ``image`` + ``label``, and the candidates: the row's own, else
  ``task.candidate_labels``, else the split's label set. Metric: ``accuracy`` (the best
  scored candidate is the label; the main metric), with per-example scores for
  ``samples.jsonl`` and bootstrap intervals. The loss of such a row pairs its image with
  the prompt of its label (what the Trainer reports as ``eval_loss`` each epoch).

With no model named, a small CLIP is built from :attr:`default_model_config` with a
tokenizer trained on the training captions (``taskhub.tokenizer_training``; settings
``model.processor.*``: default BPE, lower-cased) and a ``CLIPImageProcessor`` sized to the
vision tower, saved together as a ``CLIPProcessor`` that ``AutoProcessor`` loads.

Bad input is one line with file and row: a missing or unreadable image, an empty
candidate list, an evaluation label not among the row's candidates, a training row with
neither caption nor label; an empty ``task.candidate_labels`` or a template without
``{}`` is a one-line error about the option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from taskhub import RowError, TaskhubError, TaskSpec, hookimpl, option
from taskhub.candidates import call_options, check_candidate_options, parse_labels, row_candidates
from taskhub.collate import CHOICE_MASK, TOKEN_KEYS, TokensAndArrays
from taskhub.config import TaskConfig
from taskhub.media import load_image
from taskhub.task import Task

DEFAULT_TEMPLATE = "This is a photo of {}."
#: Side feature: each row's candidate labels, in order (for postprocess).
CANDIDATES_KEY = "_candidates"
#: The pipeline pads SigLIP prompts to this many tokens (the length SigLIP was trained at).
SIGLIP_LENGTH = 64
#: Special tokens of a tokenizer trained from the captions. The end-of-text token is the
#: one CLIP's text tower pools at (config ``eos_token_id``); it is not id 2, which CLIP
#: reads as the legacy "pool at the largest id" rule.
SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}


@dataclass
class ZeroShotImageConfig(TaskConfig):
    name: str = "zero_shot_image_classification"
    candidate_labels: Optional[list[str]] = option(
        None, "The labels to choose from, e.g. [cat,dog]; a row's own candidate_labels column wins (evaluation: default the split's labels)"
    )
    hypothesis_template: str = option(DEFAULT_TEMPLATE, "Turns a candidate label into a prompt: {} is where the label goes")
    top_k: Optional[int] = option(None, "Keep the k best-scored candidates per image (null: all, as the pipeline)", ge=1)


class ZeroShotImageClassification(Task):
    """Choose among labels given at run time for an image, with a CLIP-style image-text model."""

    name = "zero_shot_image_classification"
    config_cls = ZeroShotImageConfig
    modality = "multimodal"
    auto_model = "AutoModelForZeroShotImageClassification"
    processor_class = "AutoProcessor"
    input_columns = ("image",)
    optional_columns = ("candidate_labels", "text")
    target_columns = ("label",)
    path_columns = ("image",)
    prediction_fields = ("label", "score")
    side_inputs = (CHOICE_MASK,)
    main_metric = "accuracy"
    # per-epoch validation scores captions (the contrastive loss); accuracy needs the label set
    selection_metric = "loss"
    demo_data = "pkg://taskhub_plugins/data/digit_captions"
    demo_output = "label"
    demo_description = (
        "Upload an image and type the labels to choose from, separated by commas: the model scores how well "
        "each label's caption fits the image, labels it never saw as classes included."
    )
    # Decoded images are large once preprocessed: few batches at a time.
    chunk_batches = 4
    # With no model named: a small CLIP (two 2-layer towers, 64 wide) on 16x16 images in
    # 4x4 patches, trained from scratch on the bundled digits' captions.
    default_model_config = {
        "model_type": "clip",
        "projection_dim": 64,
        "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 32},
        "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 16, "patch_size": 4},
    }
    #: Settings of the tokenizer trained from the captions (``model.processor.*`` wins).
    tokenizer_defaults = {"algorithm": "bpe", "vocab_size": 2000, "min_frequency": 1, "lowercase": True}
    # Measured on the bundled demo (plugins/data/digit_captions/README.md).
    training_defaults = {
        "num_train_epochs": 30,
        "learning_rate": 2e-3,
        "warmup_steps": 0.1,  # a fraction of the steps
        "weight_decay": 0.05,
        "per_device_train_batch_size": 64,  # the in-batch negatives: 63 per image
        "per_device_eval_batch_size": 64,
    }

    def __init__(self, config=None, model=None, device: str = "auto"):
        super().__init__(config, model, device)
        check_candidate_options(self.config, DEFAULT_TEMPLATE)
        self._predicting = True  # preprocess builds each row's candidate prompts (run_preprocess: not for targets)

    # ------------------------------------------------------------- options
    def predict(self, inputs, batch_size: int = 32, source: str = "input", *, candidate_labels=None, hypothesis_template=None, **engine):
        """:meth:`Task.predict`, with the pipeline's per-call options ``candidate_labels``
        (a list or one comma-separated string) and ``hypothesis_template``; unset, the task's."""
        with call_options(self, DEFAULT_TEMPLATE, candidate_labels=candidate_labels, hypothesis_template=hypothesis_template):
            return super().predict(inputs, batch_size=batch_size, source=source, **engine)

    @property
    def _siglip(self) -> bool:
        """SigLIP-family models: sigmoid scores and prompts padded to 64 tokens (the pipeline's rule)."""
        return "siglip" in str(getattr(self.model_settings, "model_type", ""))

    # ---------------------------------------------------------- processor
    def train_processor(self, train_dataset, settings):
        """A ``CLIPProcessor``: a tokenizer trained on the captions (and the prompt
        template) and a ``CLIPImageProcessor`` at the vision tower's image size."""
        from transformers import CLIPImageProcessor, CLIPProcessor

        from taskhub.modeling import model_source
        from taskhub.tokenizer_training import tokenizer_settings, train_tokenizer

        settings = tokenizer_settings(settings, self.tokenizer_defaults)
        if "text" not in train_dataset.column_names:
            raise TaskhubError("training a tokenizer from data needs captions: a 'text' column in the train split")
        texts = [t for t in train_dataset["text"] if isinstance(t, str)]
        texts.append(self.config.hypothesis_template.format(""))
        config = model_source(self).config
        limit = config.get("text_config", {}).get("max_position_embeddings", 77)
        tokenizer = train_tokenizer(texts, special_tokens=SPECIAL_TOKENS, append_eos=True, model_max_length=limit, **settings)
        size = config.get("vision_config", {}).get("image_size", 224)
        images = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        return CLIPProcessor(image_processor=images, tokenizer=tokenizer)

    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        """For a model built from a config with a tokenizer trained here: the text tower's
        vocabulary size and special token ids (its end-of-text token is where it pools)."""
        from taskhub.modeling import model_source

        source = model_source(self)
        if source.name_or_path is not None:
            return {}
        tokenizer = self.processor.tokenizer
        text = {
            **source.config.get("text_config", {}),
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        return {"text_config": text}

    # ---------------------------------------------------------------- data
    def check_columns(self, columns, source: str, with_targets: bool) -> None:
        """Training and evaluation rows need a caption (``text``) or a ``label``."""
        found = list(columns)
        super().check_columns(found, source, with_targets=False)
        if with_targets and "text" not in found and "label" not in found:
            raise TaskhubError(
                f"{source}: missing column 'text' (a caption, to train on) or 'label' (to evaluate) for task {self.name} "
                f"(columns found: {', '.join(found) or 'none'}; map yours with data.columns.<name>=<your column>)"
            )

    def run_preprocess(self, batch, source: str, row_numbers, with_targets: bool = False):
        """Rows for the Trainer (with targets) are encoded as image + caption; rows to
        predict as image + each candidate's prompt."""
        saved, self._predicting = self._predicting, not with_targets
        try:
            return super().run_preprocess(batch, source, row_numbers, with_targets)
        finally:
            self._predicting = saved

    def preprocess(self, batch):
        """``pixel_values`` per row; to predict, also each row's prompts (one token sequence
        per candidate label, nested) and its candidates as a side feature."""
        images = []
        for i, value in enumerate(batch["image"]):
            if value is None:
                raise RowError(i, "missing image")
            images.append(load_image(value, i))
        pixels = self.processor.image_processor(images=images, return_tensors="np")["pixel_values"]
        features: dict[str, list] = {"pixel_values": list(pixels)}
        if not self._predicting:
            return features
        given = batch.get("candidate_labels") or [None] * len(images)
        candidates = [row_candidates(i, given[i], self.config.candidate_labels) for i in range(len(images))]
        template = self.config.hypothesis_template
        tokens = {key: [] for key in TOKEN_KEYS}
        for labels in candidates:
            encoded = self._tokenize([template.format(label) for label in labels])
            for key in TOKEN_KEYS:
                if key in encoded:
                    tokens[key].append(encoded[key])
        features.update({key: values for key, values in tokens.items() if values})
        features[CANDIDATES_KEY] = candidates
        return features

    def _tokenize(self, texts: list[str]):
        """Prompts or captions -> token ids, as the pipeline tokenizes them (SigLIP: padded to
        64), cut at the text tower's position limit (the pipeline would fail beyond it)."""
        tokenizer = self.processor.tokenizer
        if self._siglip:
            return tokenizer(texts, padding="max_length", max_length=SIGLIP_LENGTH, truncation=True)
        limit = text_position_limit(self.model_settings)
        return tokenizer(texts, truncation=limit is not None, max_length=limit)

    def encode_targets(self, batch, features):
        """Each row's caption tokens: its ``text``, else its label's prompt (an evaluation
        row, whose label must be among its candidates when it names them)."""
        rows = len(features["pixel_values"])
        texts = batch.get("text") or [None] * rows
        labels = batch.get("label") or [None] * rows
        given = batch.get("candidate_labels") or [None] * rows
        captions = []
        for i in range(rows):
            if texts[i] is not None:
                if not isinstance(texts[i], str) or not texts[i].strip():
                    raise RowError(i, f"'text' (the caption) must be a non-empty string, not {texts[i]!r}")
                captions.append(texts[i])
                continue
            label = labels[i]
            if label is None:
                raise RowError(i, "no caption ('text') to train on and no 'label' to evaluate")
            if isinstance(label, (list, tuple, dict)):
                raise RowError(i, f"label is {type(label).__name__} {label!r}; one label per image")
            candidates = row_candidates(i, given[i], self.config.candidate_labels) if given[i] is not None or self.config.candidate_labels else None
            if candidates is not None and str(label) not in candidates:
                raise RowError(i, f"label '{label}' is not among the candidate labels ({', '.join(candidates)})")
            captions.append(self.config.hypothesis_template.format(label))
        encoded = self._tokenize(captions)
        return {key: list(encoded[key]) for key in TOKEN_KEYS if key in encoded}

    # ------------------------------------------------------------ batching
    def build_collator(self):
        """Prompts padded by the tokenizer (nested: rows x most candidates x tokens, with a
        ``choice_mask``), images stacked."""
        return TokensAndArrays(self.processor.tokenizer)

    def feature_length(self, features, index: int) -> int:
        pixels = features["pixel_values"][index]
        return pixels.shape[-2] * pixels.shape[-1]

    # ------------------------------------------------------------- forward
    def call_model(self, model, inputs):
        """Prediction batches (prompts nested per row): ``logits`` rows x most candidates,
        each distinct prompt of the batch through the text tower once, the model's own
        ``logits_per_image`` picked per row (fillers masked). Training and evaluation
        batches (one caption per row): the model's contrastive ``loss`` (``return_loss``)
        and the image embeddings."""
        import torch

        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        if ids.dim() == 2:
            model_inputs = {k: v for k, v in inputs.items() if k not in self.side_inputs}
            outputs = model(**model_inputs, return_loss=True)
            return {"loss": outputs.loss, "image_embeds": outputs.image_embeds}
        rows, most, length = ids.shape
        flat = ids.reshape(rows * most, length)
        keys = flat if mask is None else torch.cat([flat, mask.reshape(rows * most, length)], dim=1)
        distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)
        text = {"input_ids": distinct[:, :length]}
        if mask is not None:
            text["attention_mask"] = distinct[:, length:]
        extra = {k: v for k, v in inputs.items() if k not in (*self.side_inputs, *TOKEN_KEYS)}
        outputs = model(**text, **extra)
        logits = outputs.logits_per_image.gather(1, inverse.view(rows, most))
        if CHOICE_MASK in inputs:
            logits = logits.masked_fill(~inputs[CHOICE_MASK], float("-inf"))
        return {"logits": logits}

    def postprocess(self, outputs, batch, features):
        """Per row: its candidates sorted by score (softmax over them; SigLIP: sigmoid each), best first."""
        import numpy as np

        logits = outputs["logits"].float().cpu().numpy().astype(np.float64)
        records = []
        for row, labels in enumerate(features[CANDIDATES_KEY]):
            values = logits[row, : len(labels)]
            if self._siglip:
                scores = 1.0 / (1.0 + np.exp(-values))
            else:
                exp = np.exp(values - values.max())
                scores = exp / exp.sum()
            order = np.argsort(-scores, kind="stable")[: self.config.top_k]
            records.append({"label": [labels[j] for j in order], "score": scores[order].tolist()})
        return records

    # ------------------------------------------------------------- metrics
    def score_examples(self, predictions, references) -> list[dict[str, Any]]:
        """Per row: ``accuracy`` (1 when the best-scored candidate is the label). Each row is
        predicted as :meth:`predict` does, its candidates its own, else
        ``task.candidate_labels``, else the split's label set (the Trainer's pass over the
        split gave the loss only)."""
        from taskhub.data import iter_rows

        rows = list(iter_rows(references))
        split_labels = sorted({str(r["label"]) for r in rows if r.get("label") is not None})
        if not split_labels:  # a split of captions (validation while training): its loss is its score
            return None
        records = []
        for i, row in enumerate(rows):
            label = row.get("label")
            if label is None:
                raise TaskhubError(f"row {i + 1}: no label to evaluate against")
            candidates = row.get("candidate_labels")
            if candidates is None:
                candidates = list(self.config.candidate_labels or split_labels)
            records.append({"image": row["image"], "candidate_labels": candidates})
        predicted = list(self.predict_iter(records, source="the evaluated split"))
        examples = []
        for prediction, row in zip(predicted, rows):
            best, gold = prediction["label"][0], str(row["label"])
            if gold not in prediction["label"] and self.config.top_k is None:
                raise TaskhubError(f"label '{gold}' is not among the candidate labels ({', '.join(prediction['label'])})")
            examples.append({"prediction": best, "reference": gold, "scores": {"accuracy": float(best == gold)}})
        return examples

    # ---------------------------------------------------------------- demo
    def label_names(self) -> list[str]:
        return list(self.config.candidate_labels or [])

    def demo_inputs(self) -> dict[str, str]:
        return {"image": "image", "candidate_labels": "text_list"}

    def demo_example(self, row):
        labels = row.get("candidate_labels") or self.config.candidate_labels
        if row.get("image") is None or not labels:
            return None
        try:
            return {"image": row["image"], "candidate_labels": parse_labels(labels)}
        except ValueError:
            return None


# ------------------------------------------------------------------ helpers
def text_position_limit(config) -> Optional[int]:
    """The text tower's position limit (CLIP's ``text_config.max_position_embeddings``)."""
    from taskhub.text import position_limit

    text_config = getattr(config, "text_config", None)
    return position_limit(text_config) if text_config is not None else position_limit(config)


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(ZeroShotImageClassification.name, ZeroShotImageClassification, ZeroShotImageConfig)]
