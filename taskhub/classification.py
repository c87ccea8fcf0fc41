"""Shared logic of every "one label (or label set) per input" task, whatever the modality.

Labels come from the training data and travel in the model config (``id2label`` /
``label2id``), so a saved model predicts names, and evaluation data with a label
the model never saw is an error rather than a silent miss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from taskhub.config import TaskConfig, option
from taskhub.errors import RowError, TaskhubError
from taskhub.task import Task

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"


@dataclass
class ClassificationConfig(TaskConfig):
    top_k: int = option(1, "How many (label, score) pairs to return per input; more than 1 returns lists", ge=1)
    problem_type: Optional[str] = option(
        None, "null: from the training data (a list of labels in a row means multi-label)", choices=(SINGLE_LABEL, MULTI_LABEL)
    )
    threshold: float = option(0.5, "Multi-label only: labels scoring at least this are predicted", ge=0, le=1)


def natural_key(label: str):
    """Sort "2" before "10", and names alphabetically."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]


class ClassificationTask(Task):
    """Base for classification heads (text, image, audio): labels, scores, accuracy/F1."""

    config_cls = ClassificationConfig
    target_columns = ("label",)
    prediction_fields = ("label", "score")
    main_metric = "accuracy"

    # ----------------------------------------------------------- labels
    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        values = train_dataset["label"]
        problem_type = self.config.problem_type or (MULTI_LABEL if _multi_label_data(values) else SINGLE_LABEL)
        _check_label_kinds(values)
        names: set[str] = set()
        for value in values:
            if value is None:
                continue
            names.update(str(v) for v in value) if isinstance(value, (list, tuple)) else names.add(str(value))
        labels = sorted(names, key=natural_key)
        if len(labels) < 2 and problem_type == SINGLE_LABEL:
            raise TaskhubError(f"training data has {len(labels)} distinct label(s); classification needs at least 2")
        return {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
            "problem_type": problem_type,
        }

    @property
    def multi_label(self) -> bool:
        return self.model.config.problem_type == MULTI_LABEL

    @property
    def label2id(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.model.config.label2id.items()}

    def label_names(self) -> list[str]:
        """The model's labels, in id order."""
        return sorted(self.label2id, key=self.label2id.get)

    def encode_targets(self, batch: dict[str, list], features: dict[str, list]) -> dict[str, list]:
        label2id = self.label2id
        multi = self.multi_label

        def label_id(i: int, name) -> int:
            if name is None:
                raise RowError(i, "missing label")
            if isinstance(name, (list, tuple)):
                raise RowError(i, f"label is a list ({name!r}) but the model predicts one label per input")
            try:
                return label2id[str(name)]
            except KeyError:
                known = ", ".join(sorted(label2id, key=natural_key))
                raise RowError(i, f"label '{name}' is not known to the model (known labels: {known})") from None

        if not multi:
            return {"labels": [label_id(i, name) for i, name in enumerate(batch["label"])]}
        encoded = []
        for i, names in enumerate(batch["label"]):
            names = names if isinstance(names, (list, tuple)) else [names]
            vector = [0.0] * len(label2id)
            for name in names:
                vector[label_id(i, name)] = 1.0
            encoded.append(vector)
        return {"labels": encoded}

    # ------------------------------------------------------- prediction
    def postprocess(self, outputs, batch: dict[str, list], features: dict[str, list]) -> list[dict[str, Any]]:
        logits = outputs.logits.float().cpu()
        id2label = self.model.config.id2label
        if self.multi_label:
            probs = logits.sigmoid()
            records = []
            for row in probs.tolist():
                keep = [(id2label[i], p) for i, p in enumerate(row) if p >= self.config.threshold]
                keep.sort(key=lambda pair: -pair[1])
                records.append({"label": [name for name, _ in keep], "score": [p for _, p in keep]})
            return records
        probs = logits.softmax(dim=-1)
        k = min(self.config.top_k, probs.shape[-1])
        scores, ids = (t.tolist() for t in probs.topk(k, dim=-1))  # Python numbers at once, not per element
        if k == 1:
            return [{"label": id2label[i[0]], "score": s[0]} for s, i in zip(scores, ids)]
        return [{"label": [id2label[j] for j in i], "score": s} for s, i in zip(scores, ids)]

    # ---------------------------------------------------------- metrics
    def decisions(self, eval_pred):
        """(predicted, true) from the Trainer's logits and label ids: label ids, or 0/1 label
        sets (multi-label, at ``task.threshold``); one place for metrics and per-row scores."""
        import numpy as np

        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        if self.multi_label:
            return (1 / (1 + np.exp(-logits)) >= self.config.threshold).astype(int), (eval_pred.label_ids >= 0.5).astype(int)
        return logits.argmax(axis=-1), eval_pred.label_ids

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score

        predicted, labels = self.decisions(eval_pred)
        if self.multi_label:
            return {
                "subset_accuracy": accuracy_score(labels, predicted),
                "f1_micro": f1_score(labels, predicted, average="micro", zero_division=0),
                "f1_macro": f1_score(labels, predicted, average="macro", zero_division=0),
            }
        return {
            "accuracy": accuracy_score(labels, predicted),
            "f1_macro": f1_score(labels, predicted, average="macro", labels=sorted(set(self.label2id.values())), zero_division=0),
        }

    def score_examples(self, predictions, references=None) -> list[dict[str, Any]]:
        """Per row from the Trainer's logits: ``accuracy`` (multi-label: ``subset_accuracy``),
        1 when the prediction is right; their mean is the reported metric."""
        import numpy as np

        predicted, labels = self.decisions(predictions)
        id2label = self.model.config.id2label
        if self.multi_label:
            names = lambda row: [id2label[int(i)] for i in np.flatnonzero(row)]  # noqa: E731
            return [
                {"prediction": names(p), "reference": names(t), "scores": {"subset_accuracy": float((p == t).all())}}
                for p, t in zip(predicted, labels)
            ]
        return [
            {"prediction": id2label[int(p)], "reference": id2label[int(t)], "scores": {"accuracy": float(p == t)}}
            for p, t in zip(predicted, labels)
        ]

    def metric_inputs(self, samples: list[dict[str, Any]]) -> tuple[list, list]:
        """Label ids, as the `evaluate` library's classification metrics take them; 0/1
        label sets (its ``multilabel`` configurations) for a multi-label model."""
        label2id = self.label2id
        if self.multi_label:
            ordered = sorted(label2id, key=label2id.get)
            hot = lambda names: [int(name in names) for name in ordered]  # noqa: E731
            return [hot(s["prediction"]) for s in samples], [hot(s["reference"]) for s in samples]
        return [label2id[s["prediction"]] for s in samples], [label2id[s["reference"]] for s in samples]


def _multi_label_data(values: list) -> bool:
    """Whether labels are label sets. A list among single labels is a mistake in the data
    more often than a one-row multi-label set: it is refused, naming the row (set
    task.problem_type=multi_label_classification to mix lists and single names)."""
    lists = [i for i, v in enumerate(values) if isinstance(v, (list, tuple))]
    if not lists or len(lists) == sum(v is not None for v in values):
        return bool(lists)
    singles = [i for i, v in enumerate(values) if v is not None and not isinstance(v, (list, tuple))]
    odd, usual = (lists, "a single label") if len(lists) <= len(singles) else (singles, "a list of labels")
    raise RowError(
        odd[0],
        f"label {values[odd[0]]!r} is {'a list' if odd is lists else 'a single label'} but {len(values) - len(odd)} other rows "
        f"have {usual}; give every row the same kind (or set task.problem_type={MULTI_LABEL} for label sets)",
    )


def _check_label_kinds(values: list) -> None:
    """Labels are names or numbers, not both: ``0`` beside ``"food"`` would silently make
    the integers extra classes."""
    kinds: dict[str, int] = {}
    for i, value in enumerate(values):
        for label in value if isinstance(value, (list, tuple)) else [value]:
            if label is None:
                continue
            kind = "text" if isinstance(label, str) else "a number" if isinstance(label, (int, float)) else type(label).__name__
            kinds.setdefault(kind, i)
            if len(kinds) > 1:
                other, at = next((k, r) for k, r in kinds.items() if k != kind)
                raise RowError(
                    i,
                    f"label {label!r} is {kind} but row {at + 1}'s label is {other}; a label column holds names or numbers, not both",
                )
