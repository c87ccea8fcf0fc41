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
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from taskhub.config import ModelConfig, TaskConfig
from taskhub.demo_declarations import DemoDeclarations
from taskhub.engine.batching import ROW_KEY, SIDE_PREFIX  # noqa: F401 - part of the plugin API here
from taskhub.errors import TaskhubError
from taskhub.metric_declarations import MetricDeclarations, score_columns  # noqa: F401 - score_columns: plugin API
from taskhub.records import RecordInputs
from taskhub.streamed_prediction import CPU_TEXT_MAX_TOKENS, StreamedPrediction  # noqa: F401 - CPU_TEXT_MAX_TOKENS: plugin API

if TYPE_CHECKING:
    import datasets


class Task(RecordInputs, MetricDeclarations, StreamedPrediction, DemoDeclarations, abc.ABC):
    """Base of all tasks. Subclasses set the class attributes and the abstract steps.

    The Python-API inputs a task takes (:class:`~taskhub.records.RecordInputs`), how it is
    scored (:class:`~taskhub.metric_declarations.MetricDeclarations`), its streamed
    prediction (:class:`~taskhub.streamed_prediction.StreamedPrediction`) and the demo it
    describes (:class:`~taskhub.demo_declarations.DemoDeclarations`) live in their own
    modules; a plugin overrides their members here like any other."""

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
    #: The Hub's name for what the task does (a model card's ``pipeline_tag``); None: the
    #: task's name with dashes (``image_classification`` -> ``image-classification``).
    pipeline_tag: ClassVar[str | None] = None
    #: The validation metric early stopping and the best checkpoint watch during training,
    #: when the per-epoch validation does not compute :attr:`main_metric` (e.g. ``"loss"``
    #: for a task whose metric needs a separate pass). None: :attr:`main_metric` (the loss
    #: for tasks evaluated by prediction).
    selection_metric: ClassVar[str | None] = None
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
    #: Batches' worth of rows read and preprocessed together at predict time; the rows of
    #: such a chunk are batched by length. Lower it for inputs that are large once
    #: preprocessed (long audio).
    chunk_batches: ClassVar[int] = 64
    #: Preprocess the next chunk in a thread while this one runs through the model on an
    #: accelerator (decoding images, audio); off for tokenizers, which postprocessing and
    #: generation also use and which are not safe across threads.
    overlap_preprocessing: ClassVar[bool] = False
    #: Features holding several token sequences per row (a question against N choices, N
    #: varying per row): the default collator pads them to ``(rows, N, length)`` with a
    #: ``choice_mask`` (:class:`~taskhub.collate.NestedPadding`), and length batching
    #: weighs them as N x the longest.
    nested_features: ClassVar[tuple[str, ...]] = ()
    #: Features that are batched with the model inputs (padded, moved to the device) but
    #: are not arguments of the model: a mask over a row's choices, image sizes, targets
    #: of a loss the model does not compute. :meth:`call_model` leaves them out of the
    #: model call; it and :meth:`compute_loss` may use them. (:data:`SIDE_PREFIX` keys,
    #: by contrast, never leave preprocessing: they are for postprocess.)
    side_inputs: ClassVar[tuple[str, ...]] = ()
    #: The run's ``seed`` (the runner sets it), for randomness at predict time (e.g. sampling).
    seed: int = 42

    def __init__(self, config: TaskConfig | None = None, model: ModelConfig | None = None, device: str = "auto"):
        self.config = config if config is not None else self.config_cls()
        self.model_config = model if model is not None else ModelConfig()
        self.device_name = device
        self._model = None
        self._settings = None  # the model config read without weights (model_settings)
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
            from taskhub.modeling import for_inference, load_trained_model, resolve_device

            model = load_trained_model(self)
            self._model = for_inference(model.to(resolve_device(self.device_name)).eval(), self.model_config, self)
        return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model

    @property
    def model_settings(self):
        """The model's ``transformers`` config: the loaded model's, else read once from the
        checkpoint without loading weights (preprocessing needs sizes and limits only)."""
        if self._model is not None:
            return self._model.config
        if self._settings is None:
            from taskhub.modeling import load_config

            self._settings = load_config(self)
        return self._settings

    def model_init_kwargs(self, train_dataset: datasets.Dataset) -> dict[str, Any]:
        """Config values the training data determines (e.g. ``num_labels``, ``id2label``).

        Called once before the model is built for training; the default adds none.
        Raise :class:`~taskhub.errors.RowError` (index: the row in ``train_dataset``) for
        data that cannot mean what the user intends; the core adds file and row.
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
        """Pads a list of :meth:`preprocess` rows into a batch of tensors: token sequences
        with the tokenizer's padding, other arrays stacked, and :attr:`nested_features`
        as ``(rows, N, length)`` with a ``choice_mask`` (:class:`~taskhub.collate.NestedPadding`)."""
        from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase, default_data_collator

        from taskhub.collate import NestedPadding

        flat = DataCollatorWithPadding(self.processor) if isinstance(self.processor, PreTrainedTokenizerBase) else default_data_collator
        return NestedPadding(flat, self.nested_features) if self.nested_features else flat

    @property
    def collator(self):
        if self._collator is None:
            self._collator = self.build_collator()
        return self._collator

    def build_training_collator(self):
        """The collator for training batches (e.g. with random masking); default: :attr:`collator`."""
        return self.collator

    def build_evaluation_collator(self):
        """The collator for the Trainer's evaluation batches (validation, test). Default: the
        training one, since the loss needs what it makes (masked tokens, padded labels);
        a task whose training collator augments (random flips) returns one that does not."""
        return self.build_training_collator()

    @classmethod
    def auto_models(cls) -> tuple[str, ...]:
        """The ``transformers`` auto classes this task loads models with; ``task=auto`` maps
        a checkpoint's architecture to the task through them. Default: :attr:`auto_model`."""
        return (cls.auto_model,)

    # -------------------------------------------------------------- inference
    def forward(self, inputs: Mapping[str, Any]):
        """Run the model on one padded batch, on the model's device, without autograd."""
        import torch

        if self.model.training:
            self.model.eval()
        device = self.model.device
        inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()}
        precision = self.model_config.dtype.value
        autocast = precision != "fp32"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=autocast):
            return self._forward(inputs)

    #: Whether inference is one call of the model on the batch's tensors, which an exported
    #: graph can stand in for (``model.backend=onnxruntime``). None: so unless the task
    #: overrides :meth:`_forward` (generate) or :meth:`call_model`; set it for one whose
    #: override still makes a single plain model call.
    graph_forward: ClassVar[bool | None] = None

    @classmethod
    def runs_as_graph(cls) -> bool:
        if cls.graph_forward is not None:
            return cls.graph_forward
        return cls._forward is Task._forward and cls.call_model is Task.call_model

    #: Whether ``model.compile=true`` compiles the model for this task's inference. Tasks
    #: whose inference is ``model.generate`` say False: its decoding loop calls the model
    #: once per token with a growing cache, and stays eager (a warning says so).
    compiles_forward: ClassVar[bool] = True

    def _forward(self, inputs: Mapping[str, Any]):
        """The inference call; generation tasks override this to call ``generate``."""
        return self.call_model(self.model, inputs)

    def call_model(self, model, inputs: Mapping[str, Any]):
        """One forward pass over a padded batch, in training and at inference. Default: the
        model on every feature but :attr:`side_inputs`. Override to use them, e.g. to mask
        the logits of padded choices with ``inputs["choice_mask"]``."""
        return model(**{k: v for k, v in inputs.items() if k not in self.side_inputs})

    def compute_loss(self, outputs, inputs: Mapping[str, Any]):
        """The training loss of a batch, from :meth:`call_model`'s outputs and the batch
        (``labels``, side inputs). Default: the loss the model computes itself from
        ``labels``. Override for a loss the model does not have (a contrastive loss, a
        masked cross-entropy over choices); the core's Trainer calls it, no subclass needed."""
        return outputs["loss"]

    @property
    def custom_loss(self) -> bool:
        """Whether training must go through :meth:`call_model` / :meth:`compute_loss`
        rather than the Trainer's own loss (which also handles label smoothing)."""
        cls = type(self)
        return bool(self.side_inputs) or cls.call_model is not Task.call_model or cls.compute_loss is not Task.compute_loss

    @abc.abstractmethod
    def postprocess(self, outputs, batch: dict[str, list], features: dict[str, list]) -> list[dict[str, Any]]:
        """Model outputs for one batch -> one record of :attr:`prediction_fields` per row.

        ``batch`` holds the raw columns of the batch's rows; ``features`` what
        :meth:`preprocess` made of them (side information, :data:`ROW_KEY`). Labels come
        from the model config's ``id2label``.
        """
