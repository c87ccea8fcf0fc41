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


class Mode(str, Enum):
    train = "train"
    evaluate = "evaluate"
    predict = "predict"
    report = "report"  # print / re-render the results table of an existing sweep dir
    demo = "demo"  # serve a Gradio app over the model (taskhub[demo]); blocks until Ctrl-C


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


@dataclass
class TaskConfig:
    """Base of every task's options; a plugin subclasses it and adds its own fields.

    ``name`` is the registry name; each subclass gives it a default.
    """

    name: str = MISSING


@dataclass
class ModelConfig:
    # A hub id, a local folder, or pkg://<python package>[/<sub/folder>] for a model
    # folder shipped inside an installed package. None: the task's default model.
    name_or_path: Optional[str] = None
    # Overrides of the model config (e.g. hidden_size=64). With no name_or_path and
    # no task default, ``model_type`` here builds a model from scratch.
    config: dict[str, Any] = field(default_factory=dict)
    # Initialise weights randomly from the (possibly overridden) config instead of
    # loading pretrained weights.
    from_scratch: bool = False
    # Overrides of the processor (tokenizer / feature extractor / image processor).
    processor: dict[str, Any] = field(default_factory=dict)
    revision: Optional[str] = None
    # Running code shipped with a checkpoint is opt-in.
    trust_remote_code: bool = False
    # Inference speed modes (predict, evaluate; training has train.bf16/fp16): compute
    # in bf16/fp16 under autocast, and/or dynamically quantize Linear layers to int8
    # (CPU). Both trade a little accuracy for speed: compare labels before adopting.
    dtype: Precision = Precision.fp32
    quantize: Quantization = Quantization.none


@dataclass
class DataConfig:
    # JSONL, CSV or Parquet files (or pkg://...). With none of them set, the task's
    # bundled demo data is used, so `taskhub task=<name>` runs with no data flags.
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    predict: Optional[str] = None
    # canonical column name -> the column's name in your files, e.g. columns.text=review
    columns: dict[str, str] = field(default_factory=dict)
    # Use only the first N rows of each split (quick runs, smoke tests).
    limit: Optional[int] = None
    # File paths inside data files (images, audio) resolve against the data file's
    # folder; with a root, every such path must lie inside it (no "..", no absolute
    # path elsewhere), for data files from people you do not fully trust.
    root: Optional[str] = None


@dataclass
class TrainConfig:
    """The commonly tuned ``transformers.TrainingArguments``; ``args`` takes any other."""

    num_train_epochs: Optional[float] = None
    max_steps: Optional[int] = None
    learning_rate: Optional[float] = None
    per_device_train_batch_size: Optional[int] = None
    per_device_eval_batch_size: Optional[int] = None
    gradient_accumulation_steps: Optional[int] = None
    weight_decay: Optional[float] = None
    warmup_steps: Optional[float] = None
    lr_scheduler_type: Optional[str] = None
    eval_strategy: Optional[str] = None
    save_strategy: Optional[str] = None
    save_steps: Optional[float] = None
    save_total_limit: Optional[int] = None
    logging_steps: Optional[float] = None
    group_by_length: Optional[bool] = None
    gradient_checkpointing: Optional[bool] = None
    fp16: Optional[bool] = None
    bf16: Optional[bool] = None
    dataloader_num_workers: Optional[int] = None
    args: dict[str, Any] = field(default_factory=dict)
    # Continue an interrupted training in the same run dir: "auto" takes the newest
    # checkpoint under <run dir>/checkpoints (none: start fresh), or name a checkpoint folder.
    # Checkpoints are saved every epoch by default (train.save_strategy / save_steps).
    resume: Optional[str] = None

    def set_values(self) -> dict[str, Any]:
        """The TrainingArguments the user set explicitly (None fields left out)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("args", "resume", "group_by_length")}
        if self.group_by_length is not None:  # transformers 5 spells it as a sampling strategy
            values["train_sampling_strategy"] = "group_by_length" if self.group_by_length else "random"
        return {**{k: v for k, v in values.items() if v is not None}, **self.args}


@dataclass
class PredictConfig:
    # Batch rows of similar length together (results keep the input order): far less
    # padding on mixed-length inputs. false: batches in input order.
    sort_by_length: bool = True
    # Cap on padded positions per batch (longest input x inputs), on top of batch_size:
    # keeps batches of long inputs within memory and short texts out of long texts'
    # batches; for images, pixels. null: the task's default (on the CPU: 4096 for text,
    # 2 s of samples for raw-waveform audio models, 8x224x224 pixels; otherwise no cap).
    max_tokens: Optional[int] = None
    # Continue an interrupted prediction into the same run dir (hydra.run.dir=<it>):
    # rows already written are kept, the rest predicted; the result equals an
    # uninterrupted run. false: start over.
    resume: bool = False


@dataclass
class ReportConfig:
    # The sweep dir whose job results to tabulate (mode=report).
    dir: Optional[str] = None
    # Sort rows by this column (e.g. test_accuracy), best first.
    sort: Optional[str] = None
    ascending: bool = False


@dataclass
class DemoConfig:
    # mode=demo: the address the app listens on. 127.0.0.1 serves this machine only;
    # 0.0.0.0 serves every network interface.
    host: str = "127.0.0.1"
    # null: the first free port from 7860.
    port: Optional[int] = None
    # Also serve through a temporary public gradio.live link (needs internet).
    share: bool = False
    # Example inputs shown under the form: the first rows of data.predict, else
    # data.test, else data.validation, else the task's bundled demo data.
    examples: int = 5


@dataclass
class RunConfig:
    """The root config: one run of one task in one mode."""

    task: Any = MISSING
    mode: Mode = Mode.train
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 42
    device: Device = Device.auto
    # Inputs per forward pass at predict time (windows of long texts count one each).
    batch_size: int = 32
    predict: PredictConfig = field(default_factory=PredictConfig)
    # A bad input row at predict/evaluate time: stop with its file and row (raise), or
    # record it in errors.jsonl (row, input, reason) and go on (skip).
    on_error: OnError = OnError["raise"]
    # Also evaluate held-out splits before training (before_* metrics beside the
    # trained ones). None: the task's default.
    evaluate_before_training: Optional[bool] = None
    # Sweeps: stop at the first failed job instead of recording it and going on.
    fail_fast: bool = False
    # Evaluation results by content key (config + checkpoint bytes + data bytes), reused
    # when a sweep is re-run; null disables reuse.
    results_cache: Optional[str] = None
    report: ReportConfig = field(default_factory=ReportConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)


def register_configs(registry) -> None:
    """Put the root schema and one ``task`` group option per registered task in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="taskhub_schema", node=RunConfig)
    for spec in registry:
        cs.store(group="task", name=spec.name, node=spec.config_cls, provider="taskhub")


def open_dict_prefixes(registry) -> set[str]:
    """Dotted paths of free-form dict fields (``data.columns``, ``model.config``, ...)
    in the root schema and every task's config."""
    import dataclasses
    import typing

    prefixes: set[str] = set()

    def walk(cls, path: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            origin = typing.get_origin(hint) or hint
            if origin is dict:
                prefixes.add(f"{path}{f.name}.")
            elif dataclasses.is_dataclass(hint):
                walk(hint, f"{path}{f.name}.")

    walk(RunConfig, "")
    for spec in registry:
        walk(spec.config_cls, "task.")
    return prefixes


def normalize_overrides(overrides, registry) -> list[str]:
    """Let ``data.columns.text=review`` add a key to a free-form dict without Hydra's ``+``
    (rewritten to ``++``, which adds or replaces)."""
    prefixes = open_dict_prefixes(registry)
    normalized = []
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" in override and not key.startswith(("+", "~")) and any(key.startswith(p) for p in prefixes):
            override = "++" + override
        normalized.append(override)
    return normalized


def plugin_searchpath() -> list[str]:
    """Config folders plugins contribute through ``taskhub_config_searchpath``."""
    from taskhub.manager import call_hook

    return [p for paths in call_hook("taskhub_config_searchpath") for p in paths]


def searchpath_overrides(paths: list[str]) -> list[str]:
    return [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []


def task_presets(paths: list[str]) -> set[str]:
    """Names of YAML task presets (``task/<name>.yaml``) in taskhub's and plugins' config folders."""
    import os
    from importlib.resources import files

    folders = [str(files("taskhub_conf"))]
    for path in paths:
        if path.startswith("pkg://"):
            try:
                folders.append(str(files(path[len("pkg://") :].replace("/", "."))))
            except ModuleNotFoundError:
                continue
        else:
            folders.append(path.removeprefix("file://"))
    return {
        name[: -len(".yaml")]
        for folder in folders
        if os.path.isdir(os.path.join(folder, "task"))
        for name in os.listdir(os.path.join(folder, "task"))
        if name.endswith(".yaml")
    }
