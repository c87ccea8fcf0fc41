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

from taskhub.collate import nested_cost
from taskhub.engine.batching import ROW_KEY, SIDE_PREFIX  # noqa: F401 - ROW_KEY: part of the plugin API here
from taskhub.engine.streaming import stream
from taskhub.config import ModelConfig, TaskConfig
from taskhub.demo_declarations import DemoDeclarations
from taskhub.records import RecordInputs
from taskhub.errors import BadRowError, RowError, RowFailure, TaskhubError

if TYPE_CHECKING:
    import datasets

#: Default ``predict.max_tokens`` for text on the CPU (see :meth:`Task.default_max_tokens`).
CPU_TEXT_MAX_TOKENS = 4096


def score_columns(examples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-example ``scores`` and ``stats`` as columns (numpy arrays, rows first), the form
    :meth:`Task.aggregate_examples` takes."""
    import numpy as np

    names = dict.fromkeys(k for e in examples[:1] for part in ("scores", "stats") for k in e.get(part, {}))
    return {k: np.asarray([e.get("scores", {}).get(k, e.get("stats", {}).get(k)) for e in examples], dtype=float) for k in names}


class Task(RecordInputs, DemoDeclarations, abc.ABC):
    """Base of all tasks. Subclasses set the class attributes and the abstract steps.

    The Python-API inputs a task takes (:class:`~taskhub.records.RecordInputs`) and the
    demo it describes (:class:`~taskhub.demo_declarations.DemoDeclarations`) live in
    their own modules; a plugin overrides their members here like any other."""

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

    #: Evaluate by running :meth:`predict` and :meth:`score_predictions` (spans, generated
    #: text) instead of ``Trainer.evaluate`` with :meth:`compute_metrics`.
    evaluate_by_prediction: ClassVar[bool] = False
    #: Evaluate the held-out splits before training too (``before_*`` metrics).
    evaluate_before_training: ClassVar[bool] = False

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """``Trainer``'s ``compute_metrics``: predictions and label ids -> metric values."""
        return {}

    #: ``Trainer``'s ``preprocess_logits_for_metrics``, or None (the default: the logits are
    #: gathered as the model returns them). A task whose :meth:`score_examples` needs less
    #: than the logits defines it as a method ``(logits, labels) -> tensor(s)``, applied to
    #: each evaluation batch before the split's batches are gathered, e.g. vocabulary logits
    #: -> per-token negative log-likelihoods (N x L numbers instead of N x L x V).
    preprocess_logits_for_metrics: ClassVar[Any] = None

    def score_predictions(self, predictions: list[dict], references: datasets.Dataset) -> dict[str, float]:
        """Metrics from :meth:`predict` records and the rows they came from
        (used when :attr:`evaluate_by_prediction` is set). Default: the aggregate of the
        per-example scores, so ``samples.jsonl`` adds up to the reported metrics."""
        return self.aggregate_examples(score_columns(self.score_examples(predictions, references)))

    def score_examples(self, predictions: Any, references: datasets.Dataset | None) -> list[dict[str, Any]] | None:
        """Per-example scores behind the metrics: one dict per evaluated row, in order, for
        ``samples.jsonl``, bootstrap intervals and paired tests between checkpoints.

        ``predictions`` is what the task's evaluation produces: the :meth:`predict` records
        (:attr:`evaluate_by_prediction`), else the Trainer's ``PredictionOutput``
        (``predictions``, ``label_ids``, one row per example). Each dict has ``scores``
        (name -> number, e.g. ``accuracy``: 1.0), optionally ``stats`` (sufficient
        statistics, numbers or lists of numbers, for metrics that are not means: entity
        counts, BLEU n-gram counts) and ``prediction`` / ``reference`` to show. None: the
        task has no per-example scores (no samples, no interval).
        """
        return None

    def aggregate_examples(self, columns: Mapping[str, Any]) -> dict[str, float]:
        """Metrics from per-example columns (``scores`` and ``stats`` keys -> numpy arrays,
        rows along the first axis): what the bootstrap recomputes on each resample.
        Default: the mean of each score."""
        return {name: float(values.mean(axis=0)) for name, values in columns.items() if values.ndim == 1}

    def metric_inputs(self, samples: list[dict[str, Any]]) -> tuple[list, list]:
        """(predictions, references) for metrics of the `evaluate` library
        (``evaluate.metrics``), from the ``samples.jsonl`` rows. Default: as shown there."""
        return [s["prediction"] for s in samples], [s["reference"] for s in samples]

    @classmethod
    def auto_models(cls) -> tuple[str, ...]:
        """The ``transformers`` auto classes this task loads models with; ``task=auto`` maps
        a checkpoint's architecture to the task through them. Default: :attr:`auto_model`."""
        return (cls.auto_model,)

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

    def predict(self, inputs: Any, batch_size: int = 32, source: str = "input", **engine) -> list[dict]:
        """Predict on raw inputs; one result per input, in order.

        The Python-API counterpart of ``mode=predict``: returns only the prediction
        fields. ``inputs`` is anything :meth:`as_records` takes (records, plain values,
        a DataFrame, a ``datasets.Dataset``, a generator). ``engine`` takes
        :meth:`predict_iter`'s batching options.
        """
        records = list(self.as_records(inputs))  # a call of the wrong shape fails before the model loads
        return list(self.predict_iter(records, batch_size=batch_size, source=source, **engine))

    def __call__(self, inputs: Any, **engine) -> dict | list[dict]:
        """Like a transformers pipeline: ``task("some text")`` -> one result,
        ``task(["a", "b"])`` (or any collection :meth:`predict` takes) -> a list."""
        single = self._single_input(inputs)
        results = self.predict([inputs] if single else inputs, **engine)
        return results[0] if single else results

    def predict_iter(
        self,
        records: Any,
        batch_size: int = 32,
        source: str = "input",
        *,
        max_tokens: int | None = None,
        sort_by_length: bool = True,
        chunk_size: int | None = None,
        on_error: str = "raise",
        first_row: int = 0,
    ) -> Iterator[dict | RowFailure]:
        """Stream predictions, in input order, for a stream of records (or anything
        :meth:`as_records` takes).

        Records are read ``chunk_size`` at a time (default: :attr:`chunk_batches` batches), so memory
        does not grow with the input. Within a chunk, rows are preprocessed together,
        batched by length (:func:`~taskhub.engine.batching.plan_batches`: at most ``batch_size``
        features and ``max_tokens`` padded positions per batch) and put back in order.
        A bad row raises :class:`~taskhub.errors.BadRowError`, or with ``on_error="skip"``
        yields a :class:`~taskhub.errors.RowFailure` in its place. ``first_row`` is the
        input position of the first record (for row numbers when resuming). Tasks with
        :attr:`overlap_preprocessing` prepare the next chunk while this one runs.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        yield from stream(
            self,
            self.as_records(records),
            source,
            batch_size=batch_size,
            max_tokens=self.default_max_tokens() if max_tokens is None else max_tokens,
            sort_by_length=sort_by_length,
            chunk_size=chunk_size or max(self.chunk_batches * batch_size, 8),
            skip=on_error == "skip",
            first_row=first_row,
            overlap=self._overlap(),
        )

    def _overlap(self) -> bool:
        """Whether preprocessing runs beside the forward pass: for tasks that allow it
        (:attr:`overlap_preprocessing`) on an accelerator, where the host thread mostly
        waits for kernels. On the CPU it did not pay, even with a core left free: image
        processors and feature extractors hold the GIL for most of their work, and the
        forward pass then waits for it (measured: 15% slower to 3% faster, benchmark row 4)."""
        if not self.overlap_preprocessing or self.model.device.type == "cpu":
            return False
        self.processor  # noqa: B018 - loaded here, not by two threads at once
        return True

    def default_max_tokens(self) -> int | None:
        """The padded-position budget per batch when the user sets none.

        On the CPU a batch of a few thousand positions already keeps the matrix units busy,
        and a budget keeps a chunk's few long texts out of batches of shorter ones (on the
        benchmark's mixed-length texts, 4,096 was 15% faster than no cap). Accelerators
        want the biggest batches: no cap. Lengths of other modalities are not tokens."""
        if self.modality == "text" and self.model.device.type == "cpu":
            return CPU_TEXT_MAX_TOKENS
        return None

    def feature_length(self, features: Mapping[str, list], index: int) -> int:
        """What one feature costs to run, for length batching: the padded length of its
        first model input (tokens, audio samples; choices x longest for several sequences).
        Tasks whose inputs cost otherwise override it (image_classification: pixels)."""
        for key, values in features.items():
            if not key.startswith(SIDE_PREFIX):
                value = values[index]
                if key in self.nested_features:
                    return nested_cost(value)
                return len(value) if hasattr(value, "__len__") else 1
        return 1

    def run_preprocess(self, batch, source: str, row_numbers, with_targets: bool = False) -> dict[str, list]:
        """:meth:`preprocess` (+ :meth:`encode_targets`), a bad row becoming a user error that
        names the file and row.

        Tasks raise RowError for rows they know to be bad. Whatever else a library raises on
        the batch (a feature extractor on a clip too short for it, a tokenizer on a value it
        cannot take) belongs to a row too: the rows are preprocessed one at a time and the
        first that fails alone is the bad one, so ``on_error=skip`` sets just that row aside.
        A TaskhubError (the options, not a row) and a failure no single row causes pass through.
        """

        def run(rows):
            features = self.preprocess(rows)
            if with_targets:
                features.update(self.encode_targets(rows, features))
            return features

        try:
            return run(batch)
        except RowError as err:
            raise BadRowError(source, row_numbers[err.index], err.message) from None
        except TaskhubError:
            raise
        except Exception:
            from taskhub.media import library_message

            for i, row_number in enumerate(row_numbers):
                try:
                    run({column: values[i : i + 1] for column, values in batch.items()})
                except RowError as err:
                    raise BadRowError(source, row_number, err.message) from None
                except TaskhubError:
                    raise
                except Exception as row_exc:
                    raise BadRowError(source, row_number, f"cannot preprocess the row: {library_message(row_exc)}") from row_exc
            raise
