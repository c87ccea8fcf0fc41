"""The Task interface every task plugin implements.

A task says *what* (columns, model class, processor class, pre/postprocessing,
metrics); the core (:mod:`taskhub.runner`, :mod:`taskhub.modeling`,
:mod:`taskhub.data`) says *how* (reading files, loading weights, training with
``transformers.Trainer``, writing outputs). Inference follows the transformers
pipelines' split: :meth:`Task.preprocess` -> :meth:`Task.forward` ->
:meth:`Task.postprocess`.

This module imports neither torch nor transformers: plugin discovery and
``taskhub --help`` import every task class.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from taskhub.config import ModelConfig, TaskConfig
from taskhub.errors import RowError, TaskhubError

if TYPE_CHECKING:
    import datasets

#: Feature keys starting with this carry side information for :meth:`Task.postprocess`
#: or :meth:`Task.encode_targets` (offsets, word ids, ...) and never reach the model.
SIDE_PREFIX = "_"
#: Side feature mapping each feature to the index of its row in the batch, for tasks
#: whose preprocessing splits one row into several windows. Absent: one feature per row.
ROW_KEY = "_row"


class Task(abc.ABC):
    """Base of all tasks. Subclasses set the class attributes and the abstract steps."""

    #: Registry name, e.g. ``"text_classification"``.
    name: ClassVar[str]
    #: The task's options (a :class:`~taskhub.config.TaskConfig` subclass).
    config_cls: ClassVar[type[TaskConfig]] = TaskConfig
    #: ``"text"``, ``"image"``, ``"audio"`` or ``"multimodal"``.
    modality: ClassVar[str]
    #: Name of the ``transformers`` auto class that loads the model, resolved lazily.
    auto_model: ClassVar[str]
    #: ``AutoTokenizer``, ``AutoImageProcessor``, ``AutoFeatureExtractor`` or ``AutoProcessor``.
    processor_class: ClassVar[str] = "AutoTokenizer"
    #: ``transformers`` attribute or ``"module:attr"`` of the Trainer class to train with.
    trainer_class: ClassVar[str] = "Trainer"
    #: Canonical input columns every row needs (at predict time too).
    input_columns: ClassVar[tuple[str, ...]] = ()
    #: Canonical input columns a row may have.
    optional_columns: ClassVar[tuple[str, ...]] = ()
    #: Canonical columns needed to train or evaluate.
    target_columns: ClassVar[tuple[str, ...]] = ()
    #: Columns holding file paths; relative paths resolve against the data file's folder.
    path_columns: ClassVar[tuple[str, ...]] = ()
    #: Fields :meth:`postprocess` adds to each record.
    prediction_fields: ClassVar[tuple[str, ...]] = ()
    #: Metric that summarises the task (model selection, sweep tables).
    main_metric: ClassVar[str] = "loss"
    #: Model used when ``model.name_or_path`` is unset (hub id, folder or ``pkg://``).
    default_model: ClassVar[str | None] = None
    #: Model config used to train from scratch when no model is named anywhere.
    default_model_config: ClassVar[Mapping[str, Any]] = {}
    #: Processor settings for a from-scratch model (``processor_class`` names the class).
    default_processor_config: ClassVar[Mapping[str, Any]] = {}
    #: Folder with ``train``/``validation``/``test`` files used when ``data.*`` is unset.
    demo_data: ClassVar[str | None] = None
    #: ``TrainingArguments`` defaults that suit the task; the user's ``train.*`` wins.
    training_defaults: ClassVar[Mapping[str, Any]] = {}
    #: The run's ``seed`` (the runner sets it), for randomness at predict time (e.g. sampling).
    seed: int = 42

    def __init__(self, config: TaskConfig | None = None, model: ModelConfig | None = None, device: str = "auto"):
        self.config = config if config is not None else self.config_cls()
        self.model_config = model if model is not None else ModelConfig()
        self.device_name = device
        self._model = None
        self._processor = None
        self._collator = None

    # ------------------------------------------------------------------ model
    @property
    def processor(self):
        """The tokenizer / feature extractor / image processor, loaded on first use."""
        if self._processor is None:
            from taskhub.modeling import load_processor

            self._processor = load_processor(self)
        return self._processor

    @processor.setter
    def processor(self, processor) -> None:
        self._processor = processor
        self._collator = None

    def train_processor(self, train_dataset: datasets.Dataset, settings: dict[str, Any]):
        """Build a processor from the training data, for a model trained from scratch with
        no processor to load (e.g. a tokenizer trained on the texts, a character vocabulary
        from transcripts). ``settings`` are the ``model.processor`` values. Saved with the model.
        """
        raise TaskhubError(
            f"task {self.name} cannot build a processor from data: set model.processor.processor_class "
            "(e.g. ViTImageProcessor) or a model.name_or_path to take the processor from"
        )

    @property
    def model(self):
        """The model for inference, loaded on first use from ``model.name_or_path``."""
        if self._model is None:
            from taskhub.modeling import load_model, resolve_device

            self._model = load_model(self).to(resolve_device(self.device_name)).eval()
        return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model

    def model_init_kwargs(self, train_dataset: datasets.Dataset) -> dict[str, Any]:
        """Config values the training data determines (e.g. ``num_labels``, ``id2label``).

        Called once before the model is built for training; the default adds none.
        """
        return {}

    # ------------------------------------------------------------------- data
    def check_columns(self, columns: Iterable[str], source: str, with_targets: bool) -> None:
        """Raise a one-line error naming the missing columns and the ones found."""
        found = list(columns)
        needed = list(self.input_columns) + (list(self.target_columns) if with_targets else [])
        missing = [c for c in needed if c not in found]
        if missing:
            names = ", ".join(f"'{c}'" for c in missing)
            raise TaskhubError(
                f"{source}: missing required column {names} for task {self.name} "
                f"(columns found: {', '.join(found) or 'none'}; map yours with data.columns.<name>=<your column>)"
            )

    @abc.abstractmethod
    def preprocess(self, batch: dict[str, list]) -> dict[str, list]:
        """Raw columns -> features: model inputs, unpadded (the collator pads).

        ``batch`` maps canonical column names to equal-length lists. Returns a dict of
        equal-length lists, one entry per feature: one per row, or several per row with
        :data:`ROW_KEY` mapping each feature to its row (long inputs split into windows).
        Keys starting with :data:`SIDE_PREFIX` carry side information (offsets, word
        ids) to :meth:`encode_targets` and :meth:`postprocess`. Raise
        :class:`~taskhub.errors.RowError` for a bad row; the core adds the file and row
        number. Called at train, evaluate and predict time.
        """

    def encode_targets(self, batch: dict[str, list], features: dict[str, list]) -> dict[str, list]:
        """Target columns -> ``labels`` (one per feature) for training and evaluation.

        ``features`` is what :meth:`preprocess` returned for the same batch, so targets
        can be aligned to tokens or windows.
        """
        raise TaskhubError(f"task {self.name} cannot be trained or evaluated")

    def build_collator(self):
        """Pads a list of :meth:`preprocess` rows into a batch of tensors."""
        from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, default_data_collator

        if isinstance(self.processor, PreTrainedTokenizerBase):
            return DataCollatorWithPadding(self.processor)
        return default_data_collator

    @property
    def collator(self):
        if self._collator is None:
            self._collator = self.build_collator()
        return self._collator

    def build_training_collator(self):
        """The collator for training batches (e.g. with random masking); default: :attr:`collator`."""
        return self.collator

    #: Evaluate by running :meth:`predict` and :meth:`score_predictions` (spans, generated
    #: text) instead of ``Trainer.evaluate`` with :meth:`compute_metrics`.
    evaluate_by_prediction: ClassVar[bool] = False
    #: Evaluate the held-out splits before training too (``before_*`` metrics).
    evaluate_before_training: ClassVar[bool] = False

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """``Trainer``'s ``compute_metrics``: predictions and label ids -> metric values."""
        return {}

    def score_predictions(self, predictions: list[dict], references: datasets.Dataset) -> dict[str, float]:
        """Metrics from :meth:`predict` records and the rows they came from
        (used when :attr:`evaluate_by_prediction` is set)."""
        raise NotImplementedError

    def derived_metrics(self, metrics: dict[str, float], prefix: str) -> dict[str, float]:
        """Metrics computed from others after an evaluation, e.g. perplexity from loss."""
        return {}

    # -------------------------------------------------------------- inference
    def forward(self, inputs: Mapping[str, Any]):
        """Run the model on one padded batch, on the model's device, without autograd."""
        import torch

        if self.model.training:
            self.model.eval()
        device = self.model.device
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        with torch.inference_mode():
            return self._forward(inputs)

    def _forward(self, inputs: Mapping[str, Any]):
        """The model call itself; generation tasks override this to call ``generate``."""
        return self.model(**inputs)

    @abc.abstractmethod
    def postprocess(self, outputs, batch: dict[str, list], features: dict[str, list]) -> list[dict[str, Any]]:
        """Model outputs for one batch -> one record of :attr:`prediction_fields` per row.

        ``batch`` holds the raw columns of the batch's rows; ``features`` what
        :meth:`preprocess` made of them (side information, :data:`ROW_KEY`). Labels come
        from the model config's ``id2label``.
        """

    def predict(self, records: Iterable[Mapping[str, Any]], batch_size: int = 32, source: str = "input") -> list[dict]:
        """Predict on raw records (dicts with canonical column names); one result per record.

        The Python-API counterpart of ``mode=predict``: returns only the prediction fields.
        """
        return list(self.predict_iter(records, batch_size=batch_size, source=source))

    def predict_iter(self, records: Iterable[Mapping[str, Any]], batch_size: int = 32, source: str = "input") -> Iterator[dict]:
        columns = self.input_columns + self.optional_columns
        rows: list[Mapping[str, Any]] = []
        start = 0
        for record in records:
            rows.append(record)
            if len(rows) == batch_size:
                yield from self._predict_batch(rows, columns, start, source)
                start += len(rows)
                rows = []
        if rows:
            yield from self._predict_batch(rows, columns, start, source)

    def _predict_batch(self, rows, columns, start: int, source: str) -> list[dict]:
        for i, row in enumerate(rows):
            missing = [c for c in self.input_columns if c not in row]
            if missing:
                raise TaskhubError(
                    f"{source}, row {start + i + 1}: missing required column '{missing[0]}' "
                    f"(columns found: {', '.join(row) or 'none'})"
                )
        batch = {c: [row.get(c) for row in rows] for c in columns if any(c in row for row in rows)}
        features = self.run_preprocess(batch, source, row_numbers=range(start + 1, start + len(rows) + 1))
        inputs = model_inputs(features)
        size = len(next(iter(inputs.values())))
        outputs = self.forward(self.collator([{k: v[i] for k, v in inputs.items()} for i in range(size)]))
        records = self.postprocess(outputs, batch, features)
        if len(records) != len(rows):
            raise RuntimeError(f"{type(self).__name__}.postprocess returned {len(records)} records for {len(rows)} rows")
        return records

    def run_preprocess(self, batch, source: str, row_numbers, with_targets: bool = False) -> dict[str, list]:
        """:meth:`preprocess` (+ :meth:`encode_targets`), turning a RowError into a user error."""
        try:
            features = self.preprocess(batch)
            if with_targets:
                features.update(self.encode_targets(batch, features))
        except RowError as err:
            raise TaskhubError(f"{source}, row {row_numbers[err.index]}: {err.message}") from None
        return features


def model_inputs(features: Mapping[str, list]) -> dict[str, list]:
    """The features the model takes: all but the ``_``-prefixed side information."""
    return {k: v for k, v in features.items() if not k.startswith(SIDE_PREFIX)}
