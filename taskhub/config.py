"""Typed run configuration: the schema Hydra validates every override against.

A ``None`` in :class:`TrainConfig` or :class:`ModelConfig` means "not set": the
task's own defaults apply, then the library's. Unknown keys and wrong types are
errors at composition time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from taskhub.options import option


class Mode(str, Enum):
    train = "train"
    evaluate = "evaluate"
    predict = "predict"
    report = "report"  # print / re-render the results table of an existing sweep dir
    demo = "demo"  # serve a Gradio app over the model (taskhub[demo]); blocks until Ctrl-C
    push = "push"  # upload a model folder to the Hugging Face Hub (push.repo_id)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


# "raise" is a keyword, hence the functional form.
OnError = Enum("OnError", [("raise", "raise"), ("skip", "skip")], type=str)


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Quantization(str, Enum):
    none = "none"
    int8 = "int8"


class ModelBackend(str, Enum):
    torch = "torch"
    onnxruntime = "onnxruntime"


# ------------------------------------------------------------------ schema
#: The package holding taskhub's Hydra configs (``conf/`` in the source tree).
CONFIG_MODULE = "taskhub_conf"
#: ``task=auto``: the task a checkpoint records (or its architecture implies); see :mod:`taskhub.provenance`.
AUTO_TASK = "auto"


@dataclass
class TaskConfig:
    """Base of every task's options; a plugin subclasses it and adds its own fields.

    ``name`` is the registry name; each subclass gives it a default.
    """

    name: str = option(MISSING, "The task (set with task=<name>)")


#: Parameter-efficient fine-tuning methods (the ``peft`` library) model.peft.method takes.
PEFT_METHODS = ("none", "lora", "ia3", "prefix")


@dataclass
class PeftConfig:
    """Train an adapter instead of every weight: the task's head is trained fully, the
    rest of the model stays frozen (see :mod:`taskhub.adapters`)."""

    method: str = option("none", "Adapter to train: lora, ia3 or prefix (prefix tuning; models with past key values); none: full fine-tuning", choices=PEFT_METHODS)
    r: int = option(8, "LoRA rank", ge=1)
    alpha: float = option(16, "LoRA scaling (alpha / r multiplies the update)", gt=0)
    dropout: float = option(0.05, "Dropout on the LoRA input", ge=0, le=1)
    target_modules: Optional[list[str]] = option(
        None, "Layer names (or name endings) that get adapters (null: peft's default for the architecture, else every Linear layer)"
    )
    num_virtual_tokens: int = option(20, "Prefix tuning: prefix length", ge=1)
    merge: bool = option(False, "Save the weights with the adapter merged in (a plain model folder) instead of the adapter alone")


@dataclass
class ModelConfig:
    name_or_path: Optional[str] = option(
        None, "A hub id, a local folder, or pkg://<package>[/<folder>] inside an installed package (null: the task's default model)"
    )
    config: dict[str, Any] = option(
        doc="Overrides of the model config (e.g. hidden_size=64); with no model named, model_type here builds one from scratch",
        factory=dict,
    )
    from_scratch: bool = option(False, "Initialise weights randomly from the (overridden) config instead of loading pretrained ones")
    processor: dict[str, Any] = option(doc="Overrides of the tokenizer / feature extractor / image processor", factory=dict)
    revision: Optional[str] = option(None, "Hub revision (branch, tag or commit) of model.name_or_path")
    trust_remote_code: bool = option(False, "Run code shipped with the checkpoint (opt-in: it runs with your permissions)")
    allow_pickle: bool = option(False, "Load weights from pickle files (pytorch_model.bin, *.pt), which can run code when loaded; off: safetensors only")
    dtype: Precision = option(
        Precision.fp32, "Inference compute precision under autocast (predict, evaluate); compare labels before adopting"
    )
    quantize: Quantization = option(Quantization.none, "Dynamically quantize Linear layers for inference (CPU only)")
    compile: bool = option(
        False, "Run inference forward passes through torch.compile (inductor, dynamic shapes; the first batch compiles, cached across runs); composes with model.dtype"
    )
    compile_freezing: bool = option(False, "With model.compile: inductor's freezing (weights folded into the graph as constants), inference only")
    backend: ModelBackend = option(
        ModelBackend.torch,
        "Inference runtime: torch, or onnxruntime (CPU; the model exported to ONNX once, cached by content; needs taskhub[onnx]); model.quantize=int8 then quantizes the graph",
    )
    base: Optional[str] = option(
        None, "For an adapter folder (adapter_config.json): the base model to load it onto (null: the one the adapter names)"
    )
    peft: PeftConfig = field(default_factory=PeftConfig)


@dataclass
class SplitNames:
    """Which split of ``data.dataset`` each role reads: any split expression ``datasets``
    accepts (``train``, ``validation[:10%]``, ``train[90%:]``)."""

    train: Optional[str] = option(None, "Split of data.dataset to train on (null: its train split)")
    validation: Optional[str] = option(None, "Split evaluated after every epoch (null: its validation split, if any)")
    test: Optional[str] = option(None, "Split evaluated after training and by mode=evaluate (null: its test split, if any)")
    predict: Optional[str] = option(None, "Split mode=predict reads (null: its test split)")


#: What data.train / validation / test / predict accept, for --help.
DATA_SOURCE = "str or list[str], or null"
SOURCES = "a JSONL, CSV or Parquet file (optionally .gz/.bz2/.xz/.zst), a glob, a list of them, hf:// path or URL, or an imagefolder / audiofolder folder"


@dataclass
class DataConfig:
    # Any: a string or a list of them (OmegaConf has no unions); data.py checks the values.
    train: Any = option(None, f"Training data: {SOURCES} (none set at all: the task's bundled demo data)", accepts=DATA_SOURCE)
    validation: Any = option(None, "Validation data, evaluated after every epoch (same sources as data.train)", accepts=DATA_SOURCE)
    test: Any = option(None, "Test data, evaluated after training and by mode=evaluate", accepts=DATA_SOURCE)
    predict: Any = option(None, "Inputs of mode=predict", accepts=DATA_SOURCE)
    dataset: Optional[str] = option(None, "A dataset repository instead of files: a Hub id or a local folder (data files + README.md configs)")
    config: Optional[str] = option(None, "The dataset's config (subset) name, for data.dataset")
    revision: Optional[str] = option(None, "Hub revision (branch, tag or commit) of data.dataset")
    split: SplitNames = field(default_factory=SplitNames)
    streaming: bool = option(
        False, "Read the data as a stream (datasets.IterableDataset): predict and evaluate files larger than memory; training needs train.max_steps"
    )
    columns: dict[str, str] = option(
        doc="Canonical column name -> the column's name in your files, e.g. data.columns.text=review", factory=dict
    )
    limit: Optional[int] = option(None, "Use only the first N rows of each split (quick runs, smoke tests)", ge=1)
    root: Optional[str] = option(
        None, "Every local file path inside data (images, audio, folder layouts) must lie inside this folder: for data you do not fully trust"
    )


#: Values of TrainingArguments' eval_strategy / save_strategy.
STRATEGIES = ("no", "steps", "epoch")


@dataclass
class TrainConfig:
    """The commonly tuned ``transformers.TrainingArguments``; ``args`` takes any other."""

    num_train_epochs: Optional[float] = option(None, "Epochs to train (null: the task's default)", gt=0)
    max_steps: Optional[int] = option(None, "Optimizer steps to train; overrides num_train_epochs", ge=1)
    learning_rate: Optional[float] = option(None, "Peak learning rate (null: the task's default)", gt=0)
    per_device_train_batch_size: Optional[int] = option(None, "Training examples per device per step", ge=1)
    per_device_eval_batch_size: Optional[int] = option(None, "Evaluation examples per device per step", ge=1)
    gradient_accumulation_steps: Optional[int] = option(None, "Steps whose gradients add up before each update", ge=1)
    weight_decay: Optional[float] = option(None, "AdamW weight decay", ge=0)
    warmup_steps: Optional[float] = option(None, "Learning-rate warm-up: steps, or a fraction of all steps when below 1", ge=0)
    lr_scheduler_type: Optional[str] = option(None, "Learning-rate schedule (linear, cosine, constant, ...)")
    eval_strategy: Optional[str] = option(None, "When to evaluate the validation split (default: every epoch)", choices=STRATEGIES)
    save_strategy: Optional[str] = option(
        None, "When to save checkpoints (default: every epoch, removed after a successful run)", choices=(*STRATEGIES, "best")
    )
    save_steps: Optional[float] = option(None, "Steps between checkpoints with save_strategy=steps", gt=0)
    save_total_limit: Optional[int] = option(
        1, "Checkpoints kept, the newest (null: every one, e.g. to evaluate each epoch's checkpoint with train.save_strategy=epoch)", ge=1
    )
    logging_steps: Optional[float] = option(None, "Steps between loss logs with logging_strategy=steps", gt=0)
    group_by_length: Optional[bool] = option(None, "Batch training examples of similar length together")
    gradient_checkpointing: Optional[bool] = option(None, "Recompute activations in the backward pass: less memory, slower")
    fp16: Optional[bool] = option(None, "Mixed-precision training in float16 (GPU)")
    bf16: Optional[bool] = option(None, "Mixed-precision training in bfloat16")
    dataloader_num_workers: Optional[int] = option(None, "Worker processes loading training batches", ge=0)
    # Many processes (torchrun / accelerate launch): see docs/scaling.md.
    fsdp: Optional[str] = option(
        None, "Fully sharded data parallel under torchrun, e.g. 'full_shard auto_wrap' (options of TrainingArguments.fsdp, space-separated)"
    )
    fsdp_config: Optional[str] = option(None, "FSDP settings: a JSON file (e.g. transformer_layer_cls_to_wrap, state_dict_type)")
    deepspeed: Optional[str] = option(None, "A DeepSpeed config JSON file (needs the deepspeed package), under torchrun / accelerate launch")
    ddp_backend: Optional[str] = option(
        None, "The torch.distributed backend (default: nccl on GPUs, gloo on the CPU)", choices=("nccl", "gloo", "mpi", "xccl", "hccl", "cncl", "mccl")
    )
    ddp_find_unused_parameters: Optional[bool] = option(
        None, "DDP looks for parameters without gradients every step (default: on unless gradient_checkpointing); off is faster when none are"
    )
    ddp_bucket_cap_mb: Optional[int] = option(None, "DDP gradient bucket size in MB (all-reduced together)", ge=1)
    ddp_broadcast_buffers: Optional[bool] = option(None, "DDP copies the main process's buffers (e.g. batch-norm statistics) to the others every step")
    ddp_timeout: Optional[int] = option(None, "Seconds a process waits for the others (collectives, the process group start) before failing", ge=1)
    args: dict[str, Any] = option(doc="Any other transformers.TrainingArguments field, e.g. train.args.max_grad_norm=0.5", factory=dict)
    resume: Optional[str] = option(
        None, "Continue an interrupted training in the same run dir: auto (the newest checkpoint) or a checkpoint folder"
    )
    # Any: a name or a list of them (OmegaConf has no unions); taskhub.tracking checks them.
    report_to: Any = option(
        "none",
        "Experiment trackers (tensorboard, mlflow, wandb, trackio, ... or a list): logs go to <run dir>/logs/ and are kept",
        accepts="str or list[str]",
    )
    early_stopping_patience: Optional[int] = option(
        None, "Stop after this many evaluations without improving the task's main validation metric; the best model is kept", ge=1
    )

    def set_values(self) -> dict[str, Any]:
        """The TrainingArguments the user set explicitly (None fields left out)."""
        own = ("args", "resume", "group_by_length", "report_to", "early_stopping_patience")  # taskhub's keys, mapped in modes/trainer.py
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in own}
        if self.group_by_length is not None:  # transformers 5 spells it as a sampling strategy
            values["train_sampling_strategy"] = "group_by_length" if self.group_by_length else "random"
        values = {k: v for k, v in values.items() if v is not None and k != "save_total_limit"}
        if self.save_total_limit != TrainConfig.save_total_limit:  # null is a value here: keep every checkpoint
            values["save_total_limit"] = self.save_total_limit
        return {**values, **self.args}


class Backend(str, Enum):
    local = "local"  # this process (the streaming engine)
    ray = "ray"  # Ray Data actors (taskhub[ray])


@dataclass
class RayConfig:
    """``predict.backend=ray``: where and how wide the Ray Data actor pool runs."""

    address: Optional[str] = option(
        None, "The Ray cluster to join: auto (the running one), ray://<host>:10001, or null to start a local Ray instance"
    )
    num_workers: int = option(2, "Actors in the pool; each loads the model once", ge=1)
    num_gpus_per_worker: float = option(0, "GPUs each actor reserves (Ray sets its CUDA_VISIBLE_DEVICES)", ge=0)
    batch_size: int = option(256, "Rows Ray hands an actor at a time (the model still batches by batch_size and predict.max_tokens)", ge=1)


@dataclass
class PredictConfig:
    sort_by_length: bool = option(
        True, "Batch rows of similar length together (results keep the input order): far less padding on mixed lengths"
    )
    max_tokens: Optional[int] = option(
        None,
        "Cap on padded positions per batch, on top of batch_size (null: on the CPU 4096 for text, "
        "2 s of samples for raw-waveform audio, 8x224x224 pixels for images; no cap on a GPU)",
        ge=1,
    )
    resume: bool = option(False, "Continue an interrupted prediction into the same run dir (hydra.run.dir=<it>)")
    output: str = option(
        "predictions.jsonl",
        "The predictions file; its extension picks the format: .jsonl, .csv (lists and objects as JSON text) or .parquet. "
        "A relative path is inside the run dir",
    )
    output_format: str = option(
        "file",
        "file: one predictions file, predict.output (its extension picks the format); parquet: a folder of Parquet shards "
        "written by Ray Data (needs predict.backend=ray; predict.output names the folder, default predictions/; "
        "column row is the input row number)",
        choices=("file", "parquet"),
    )
    backend: Backend = option(Backend.local, "Where prediction runs: local (this process) or ray (Ray Data actors, pip install 'taskhub[ray]')")
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass
class ReportConfig:
    dir: Optional[str] = option(None, "mode=report: the sweep dir whose job results to tabulate")
    sort: Optional[str] = option(None, "Sort rows by this column (e.g. test_accuracy), best first")
    ascending: bool = option(False, "Sort smallest first")
    baseline: Optional[str] = option(
        None, "Compare every row with this one (a job number or a model path) by a paired test on the same examples; marks differences that are not significant"
    )
    compare: Optional[str] = option(None, "Another sweep dir to print and plot beside report.dir (e.g. the same checkpoints on other data)")


@dataclass
class EvaluateConfig:
    samples: bool = option(True, "mode=evaluate: write samples.jsonl (each row's input, reference, prediction and scores)")
    bootstrap: int = option(1000, "Bootstrap resamples for the main metric's 95% confidence interval and stderr (0: none)", ge=0)
    metrics: list[str] = option(
        doc="Metrics of the `evaluate` library to add, by name (a Hub metric, needs a network) or local module path", factory=list
    )


@dataclass
class PushConfig:
    repo_id: Optional[str] = option(None, "mode=push: the Hub repository to upload model.name_or_path to (<org or user>/<name>)")
    private: bool = option(True, "Create the repository as private (if it does not exist yet)")
    commit_message: str = option("Upload model trained with taskhub", "The commit message of the upload")


@dataclass
class DemoConfig:
    host: str = option("127.0.0.1", "mode=demo: the address to serve on (127.0.0.1: this machine only; 0.0.0.0: every network)")
    port: Optional[int] = option(None, "The port (null: the first free one from 7860)", ge=1, le=65535)
    share: bool = option(False, "Also serve through a temporary public gradio.live link (needs internet)")
    examples: int = option(5, "Example inputs shown under the form (from data.predict, test or validation)", ge=0)


@dataclass
class RunConfig:
    """The root config: one run of one task in one mode."""

    task: Any = MISSING
    mode: Mode = option(Mode.train, "What to do: train, evaluate, predict, demo (serve an app), report (a sweep's table) or push (upload a model folder to the Hub)")
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = option(42, "Seed of every random number generator (training order, initialisation, sampling)", ge=0)
    device: Device = option(Device.auto, "Where the model runs (auto: a GPU when there is one)")
    batch_size: int = option(32, "Inputs per forward pass at predict time (windows of long texts count one each)", ge=1)
    predict: PredictConfig = field(default_factory=PredictConfig)
    on_error: OnError = option(
        OnError["raise"], "A bad input row at predict/evaluate time: stop naming file and row (raise), or record it in errors.jsonl (skip)"
    )
    evaluate_before_training: Optional[bool] = option(None, "Also evaluate held-out splits before training (null: the task's default)")
    fail_fast: bool = option(False, "Sweeps: stop at the first failed job instead of recording it and going on")
    results_cache: Optional[str] = option(
        None, "Folder of evaluation results by content key, reused when a sweep is re-run (null: no reuse)"
    )
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    push: PushConfig = field(default_factory=PushConfig)
    progress: Optional[bool] = option(
        None, "Progress bars (rows, rows/s, ETA) on stderr for predict, evaluation by prediction and sweeps (null: when stderr is a terminal)"
    )

    def engine_options(self) -> dict[str, Any]:
        """The batching settings, as :meth:`taskhub.Task.predict_iter` takes them."""
        return {"batch_size": self.batch_size, "max_tokens": self.predict.max_tokens, "sort_by_length": self.predict.sort_by_length}
