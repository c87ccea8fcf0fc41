"""Model and processor loading for every task: pretrained, or built from a config.

Where the weights come from is decided once, in :func:`model_source`:
``model.name_or_path`` if set, else the task's ``default_model``, else a model
built from scratch from ``model.config`` (over the task's ``default_model_config``).
``model.from_scratch=true`` builds from the named checkpoint's config instead of
loading its weights.
"""

from __future__ import annotations

import importlib
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from taskhub import adapters
from taskhub.errors import TaskhubError

if TYPE_CHECKING:
    from taskhub.config import ModelConfig
    from taskhub.task import Task

PKG_SCHEME = "pkg://"


def resolve_path(path: str) -> str:
    """``pkg://package/sub/path`` -> a filesystem path inside that installed package."""
    if not path.startswith(PKG_SCHEME):
        return path
    package, _, rest = path[len(PKG_SCHEME) :].partition("/")
    try:
        root = files(package)
    except ModuleNotFoundError:
        raise TaskhubError(f"{path}: Python package '{package}' is not installed") from None
    return str(root.joinpath(rest)) if rest else str(root)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TaskhubError("device=cuda but no CUDA GPU is available (use device=auto or device=cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise TaskhubError("device=mps but MPS is not available (use device=auto or device=cpu)")
    return name


def transformers_attr(name: str):
    """A ``transformers`` class by name, or any ``module:attr``."""
    if ":" in name:
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)
    import transformers

    try:
        return getattr(transformers, name)
    except AttributeError:
        raise TaskhubError(f"transformers has no class '{name}'") from None


@dataclass(frozen=True)
class ModelSource:
    name_or_path: str | None  # None: built from ``config`` alone
    config: dict[str, Any]  # config overrides (with model_type when name_or_path is None)
    processor: dict[str, Any]  # processor overrides / from-scratch processor settings
    from_scratch: bool


def model_source(task: Task) -> ModelSource:
    cfg = task.model_config
    if cfg.name_or_path:
        return ModelSource(resolve_path(cfg.name_or_path), dict(cfg.config), dict(cfg.processor), cfg.from_scratch)
    if task.default_model:
        return ModelSource(resolve_path(task.default_model), dict(cfg.config), dict(cfg.processor), cfg.from_scratch)
    config = {**task.default_model_config, **cfg.config}
    if "model_type" not in config:
        raise TaskhubError(
            f"task {task.name} has no default model: set model.name_or_path, or model.config.model_type to train one from scratch"
        )
    return ModelSource(None, config, {**task.default_processor_config, **cfg.processor}, True)


def _hub_kwargs(task: Task) -> dict[str, Any]:
    cfg = task.model_config
    kwargs: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
    if cfg.revision:
        kwargs["revision"] = cfg.revision
    return kwargs


@contextmanager
def _loading(what: str, name: str):
    """Turn a loader's exception into a one-line error naming the model."""
    try:
        yield
    except TaskhubError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        if "trust_remote_code" in text:
            raise TaskhubError(
                f"{what} '{name}' needs code shipped with the checkpoint; if you trust it, set model.trust_remote_code=true"
            ) from None
        if name.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(name)):
            raise TaskhubError(f"model not found: '{name}' is not a folder") from None
        if not os.path.exists(os.path.expanduser(name)) and _unreachable_hub(text):
            raise TaskhubError(
                f"cannot load {what} '{name}': {_hub_unreachable_reason()} and it is not in the local cache; download it "
                f"where there is a network (hf download {name} --local-dir <folder>) and set model.name_or_path=<folder>"
            ) from None
        first_line = text.splitlines()[0] if text else type(exc).__name__
        raise TaskhubError(f"cannot load {what} '{name}': {first_line}") from None


def _unreachable_hub(message: str) -> bool:
    """Whether a loader failed because the Hub could not be asked (offline mode, no network)."""
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or "couldn't connect" in message.lower() or "connection" in message.lower()


def _hub_unreachable_reason() -> str:
    from huggingface_hub import constants

    return "the run is offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "the Hugging Face Hub cannot be reached"


def processor_from_data(task: Task) -> bool:
    """Whether training must build the processor from the data (see :meth:`Task.train_processor`)."""
    source = model_source(task)
    return source.name_or_path is None and "processor_class" not in source.processor


def load_processor(task: Task):
    source = model_source(task)
    processor_cls = transformers_attr(task.processor_class)
    if source.name_or_path is None:
        settings = dict(source.processor)
        class_name = settings.pop("processor_class", None)
        if class_name is None:
            raise TaskhubError(
                f"task {task.name}: no processor to load: name a trained model with model.name_or_path, "
                "or set model.processor.processor_class"
            )
        return transformers_attr(class_name)(**settings)
    with _loading("processor", source.name_or_path):
        processor = processor_cls.from_pretrained(source.name_or_path, **_hub_kwargs(task), **source.processor)
    _check_vocabulary(processor, source.name_or_path)
    return processor


def _check_vocabulary(processor, name: str) -> None:
    """A tokenizer loaded from a folder without its vocabulary files still loads, with only
    its special tokens: every word would become the unknown token. Refuse it."""
    tokenizer = getattr(processor, "tokenizer", processor)
    special = getattr(tokenizer, "all_special_tokens", None)
    if special is not None and len(tokenizer) <= len(set(special)):
        files = ", ".join(sorted(set(getattr(tokenizer, "vocab_files_names", {}).values())) or ["tokenizer.json"])
        raise TaskhubError(
            f"model '{name}' has no tokenizer vocabulary ({files} missing): every word would be unknown; "
            "copy the tokenizer files of the model it was trained from into that folder"
        )


def load_config(task: Task):
    """The model's config (with ``model.config`` overrides), without its weights."""
    from transformers import AutoConfig

    source = model_source(task)
    overrides = dict(source.config)
    if source.name_or_path is None:
        return AutoConfig.for_model(overrides.pop("model_type"), **overrides)
    with _loading("model config", source.name_or_path):
        return AutoConfig.from_pretrained(source.name_or_path, **_hub_kwargs(task), **overrides)


def load_model(task: Task, **config_values: Any):
    """The task's model: pretrained weights, or random weights from a config.

    ``config_values`` (e.g. ``num_labels``, ``id2label``) go into the model config;
    a pretrained head of another size is then re-initialised.
    """
    return _load_model(task, config_values)[0]


def load_trained_model(task: Task):
    """The task's model for inference, which must be trained for the task: a checkpoint
    without weights for the task's head (a language model given to ner, a base encoder
    given to qa) would be completed with random ones and predict noise. Refused."""
    model, missing = _load_model(task, {})
    check_head(task, model)
    if missing:
        name = model_source(task).name_or_path
        trained_as = (getattr(model.config, "architectures", None) or ["base model"])[0]
        shown = ", ".join(sorted(missing)[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise TaskhubError(
            f"model '{name}' ({trained_as}) has no trained {task.name} head: its weights lack {shown}; "
            f"train one with task={task.name} mode=train model.name_or_path={name}"
        )
    return model


def _load_model(task: Task, config_values: dict[str, Any]):
    """The model and the names of its parameters the checkpoint did not hold (randomly
    initialised; none for a model built from a config)."""
    from transformers import AutoConfig

    source = model_source(task)
    auto_cls = transformers_attr(task.auto_model)
    overrides = {**source.config, **config_values}
    if source.name_or_path is None:
        model_type = overrides.pop("model_type")
        try:
            config = AutoConfig.for_model(model_type, **overrides)
        except (ValueError, KeyError) as exc:
            raise TaskhubError(f"model.config: cannot build a '{model_type}' config: {exc}") from None
        return auto_cls.from_config(config), []
    name = source.name_or_path
    if adapters.is_adapter(name):
        return _load_adapter(task, name, auto_cls, overrides)
    with _loading("model", name):
        config = AutoConfig.from_pretrained(name, **_hub_kwargs(task), **overrides)
        if source.from_scratch:
            return auto_cls.from_config(config, trust_remote_code=task.model_config.trust_remote_code), []
        base = AutoConfig.from_pretrained(name, **_hub_kwargs(task))
        resized = "num_labels" in config_values and len(getattr(base, "id2label", {}) or {}) != config.num_labels
        model, info = auto_cls.from_pretrained(
            name, config=config, ignore_mismatched_sizes=resized, output_loading_info=True, **_hub_kwargs(task), **weights_policy(task, name, auto_cls)
        )
        return model, list(info.get("missing_keys", ()))


def _load_adapter(task: Task, folder: str, auto_cls, overrides: dict[str, Any]):
    """A peft adapter folder on its base model (``model.base``, else the one the adapter
    names): the task model's config comes from the folder, the head from the adapter, so a
    weight counts as missing only when neither the base nor the adapter holds it."""
    from transformers import AutoConfig

    base = resolve_path(adapters.base_of(folder, task.model_config.base))
    local = os.path.isabs(base) or base.startswith((".", "~")) or base.count("/") > 1
    adapters.check_base(folder, base, os.path.isdir(os.path.expanduser(base)) or not local)
    with _loading("model config", folder):
        config = AutoConfig.from_pretrained(folder, **overrides)
    with _loading("base model", base):
        model, info = auto_cls.from_pretrained(
            base, config=config, ignore_mismatched_sizes=True, output_loading_info=True, **_hub_kwargs(task), **weights_policy(task, base, auto_cls)
        )
    with _loading("adapter", folder):
        model, supplied = adapters.attach(model, folder)
    mismatched = [key[0] if isinstance(key, tuple) else key for key in info.get("mismatched_keys", ())]
    return model, [key for key in [*info.get("missing_keys", ()), *mismatched] if key not in supplied]


PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def weights_policy(task: Task, name: str, auto_cls) -> dict[str, Any]:
    """Only safetensors weights load unless ``model.allow_pickle=true``: a pickle can run
    code when loaded. A local folder holding only pickle weights is refused in one line
    that says how to convert it; for a hub id transformers is told to load safetensors only."""
    if task.model_config.allow_pickle:
        return {}
    if os.path.isdir(name):
        names = sorted(os.listdir(name))
        pickled = [n for n in names if n.endswith(PICKLE_WEIGHTS) and n != "training_args.bin"]
        if pickled and not any(n.endswith(".safetensors") for n in names):
            convert = f"python -c \"import transformers as t; t.{auto_cls.__name__}.from_pretrained('{name}', use_safetensors=False).save_pretrained('{name}')\""
            raise TaskhubError(
                f"model '{name}' has only pickle weights ({pickled[0]}), which can run code when loaded: "
                f"convert them once with {convert}, or set model.allow_pickle=true if you trust the file"
            )
    return {"use_safetensors": True}


def for_inference(model, model_config: ModelConfig, task: Task | None = None):
    """The loaded model with the ``model.quantize`` speed mode applied (``model.dtype``
    applies per forward pass, as autocast, in :meth:`Task.forward`), or, with
    ``model.backend=onnxruntime``, an exported graph standing in for it."""
    if model_config.compile or model_config.compile_freezing:  # refuses model.quantize and other backends
        from taskhub.compiling import compile_for_inference

        return compile_for_inference(model, model_config, task)
    if model_config.backend.value == "onnxruntime":
        return _onnxruntime(model, model_config, task)
    if model_config.quantize.value == "none":
        return model
    import torch

    if model.device.type != "cpu":
        raise TaskhubError(f"model.quantize={model_config.quantize.value} runs on the CPU only; set device=cpu")
    # Linear layers only: their int8 kernels are what pays on CPU; activations are
    # quantized on the fly per batch (dynamic quantization), no calibration data needed.
    # One weight scale per output channel rather than per matrix: same kernels, smaller
    # error (measured on the MiniLM food classifier: 99.5% label agreement with fp32 and
    # no test-accuracy drop, against -2 points with one scale per matrix).
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():  # torch announces a successor API; this one is current in 2.x
        warnings.filterwarnings("ignore", message=".*quantize.*deprecated", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)


def _onnxruntime(model, model_config: ModelConfig, task: Task | None):
    """The model as an ONNX Runtime session (:mod:`taskhub.onnx_backend`), after the
    one-line refusals: another precision, a task whose inference is not one forward call
    an exported graph can stand in for (the task says so), a device other than the CPU."""
    from taskhub import onnx_backend

    if model_config.dtype.value != "fp32":
        raise TaskhubError(
            f"model.dtype={model_config.dtype.value} is not supported with model.backend=onnxruntime: it runs the fp32 graph "
            "(or int8 with model.quantize=int8); set model.dtype=fp32 or model.backend=torch"
        )
    if task is not None and not task.runs_as_graph():
        raise TaskhubError(
            f"task {task.name} is not supported with model.backend=onnxruntime: its inference is not one forward call "
            "an exported graph can replace (it generates, or calls the model its own way); use model.backend=torch"
        )
    if model.device.type != "cpu":
        raise TaskhubError(f"model.backend=onnxruntime runs on the CPU (onnxruntime's CPU provider), not {model.device.type}; set device=cpu")
    onnx_backend.require()
    folder = model_source(task).name_or_path if task is not None else getattr(model, "name_or_path", None)
    if folder and adapters.is_adapter(folder):
        folder = None  # an adapter folder lacks the base weights: key the graph on the weights themselves
    return onnx_backend.OnnxModel(model, folder, quantize=model_config.quantize.value == "int8")


def check_head(task: Task, model) -> None:
    """Refuse to run a checkpoint trained with another task's head: transformers would
    quietly put a random head of the right kind on it and predict noise."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model  # an unmerged adapter (prefix tuning)
    trained_as = (getattr(model.config, "architectures", None) or [None])[0]
    loaded_as = type(model).__name__
    if trained_as and "For" in trained_as and "For" in loaded_as and trained_as != loaded_as:
        name = model_source(task).name_or_path
        raise TaskhubError(
            f"model '{name}' is a {trained_as} checkpoint, not a {task.name} model ({loaded_as}); "
            f"train one with task={task.name} mode=train model.name_or_path={name}"
        )

