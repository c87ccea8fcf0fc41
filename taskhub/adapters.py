"""Parameter-efficient fine-tuning with the ``peft`` library: ``model.peft.method`` =
``lora`` | ``ia3`` | ``prefix`` for any task.

The task's head (the layers outside the pretrained base model, e.g. a classifier that
starts random) is trained fully through peft's ``modules_to_save``; the base stays
frozen. An adapter folder holds ``adapter_config.json`` + the adapter weights, the task
model's ``config.json`` (labels, head sizes) and the processor; its base is named in
``adapter_config.json`` (portable names such as ``pkg://...`` or a hub id), or, for a base
built from scratch (random weights that exist nowhere else), saved inside it as ``base/``.
This module knows peft; :mod:`taskhub.modeling` decides when to use it.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from taskhub.errors import TaskhubError

if TYPE_CHECKING:
    from taskhub.config import PeftConfig

log = logging.getLogger("taskhub")

ADAPTER_CONFIG = "adapter_config.json"
#: Inside an adapter folder: the base model of a run that built it from scratch.
SAVED_BASE = "base"
#: peft's task types by the transformers auto class a task loads with: they give prefix
#: tuning its forward pass and generation; other tasks use peft's generic model.
TASK_TYPES = {
    "AutoModelForSequenceClassification": "SEQ_CLS",
    "AutoModelForTokenClassification": "TOKEN_CLS",
    "AutoModelForQuestionAnswering": "QUESTION_ANS",
    "AutoModelForCausalLM": "CAUSAL_LM",
    "AutoModelForSeq2SeqLM": "SEQ_2_SEQ_LM",
}


def is_adapter(path: str | None) -> bool:
    return bool(path) and os.path.isfile(os.path.join(path, ADAPTER_CONFIG))


# ------------------------------------------------------------------ training
def wrap(model, cfg: PeftConfig, auto_model: str):
    """The model with an adapter of ``cfg.method`` added and everything but the adapter
    and the task head frozen."""
    import peft

    task_type = TASK_TYPES.get(auto_model)
    head = head_modules(model)
    if cfg.method == "prefix":
        if "past_key_values" not in inspect.signature(model.forward).parameters:
            raise TaskhubError(
                f"model.peft.method=prefix: {type(model).__name__} takes no past key values, which prefix tuning needs; use lora or ia3"
            )
        config = peft.PrefixTuningConfig(task_type=task_type, num_virtual_tokens=cfg.num_virtual_tokens, modules_to_save=list(head) or None)
    else:
        targets = list(cfg.target_modules) if cfg.target_modules else default_targets(model.config.model_type, cfg.method)
        common = {"task_type": task_type, "target_modules": targets, "modules_to_save": list(head) or None}
        if cfg.method == "lora":
            config = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, **common)
        else:
            config = peft.IA3Config(feedforward_modules=feedforward_targets(model.config.model_type, targets), **common)
    if cfg.target_modules:
        names = [name for name, _ in model.named_modules()]
        unmatched = [t for t in cfg.target_modules if not any(n == t or n.endswith(f".{t}") for n in names)]
        if unmatched:
            raise TaskhubError(
                f"model.peft.target_modules: {', '.join(unmatched)} matches no layer of {type(model).__name__}; its layers: {', '.join(layer_names(model))}"
            )
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as exc:
        raise TaskhubError(f"model.peft.method={cfg.method}: {str(exc).strip().splitlines()[0]}") from None
    trainable, total = wrapped.get_nb_trainable_parameters()
    log.info("peft %s: %s of %s parameters trainable (%.2f%%)%s", cfg.method, f"{trainable:,}", f"{total:,}", 100 * trainable / total,
             f"; head trained fully: {', '.join(head)}" if head else "")  # fmt: skip
    return wrapped


def default_targets(model_type: str, method: str) -> list[str] | str:
    """peft's own per-architecture defaults; every Linear layer but the output for an
    architecture peft has no entry for."""
    from peft.utils import constants

    table = {"lora": constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, "ia3": constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING}
    return list(table[method].get(model_type, [])) or "all-linear"


def feedforward_targets(model_type: str, targets: list[str] | str) -> list[str] | str:
    """IA3 scales a feed-forward layer's input rather than its output: peft's feed-forward
    layers of the architecture, among the targeted ones (peft requires that)."""
    from peft.utils import constants

    feedforward = constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model_type, [])
    if targets == "all-linear":
        return []
    return [name for name in feedforward if name in targets]


def head_modules(model) -> list[str]:
    """The task head, found from the model's structure: the top-level modules with
    parameters outside the pretrained base model (``model.base_model``), descending into
    any that share a weight with the input embeddings (a language-model head tied to
    them, which is not trained separately)."""
    base = model.base_model
    if base is model:
        return []
    embeddings = model.get_input_embeddings()
    tied = {id(p) for p in embeddings.parameters()} if embeddings is not None else set()

    def untied(module, name: str) -> list[str]:
        params = list(module.parameters())
        if not params:
            return []
        if not any(id(p) in tied for p in params):
            return [name]
        return [found for child_name, child in module.named_children() for found in untied(child, f"{name}.{child_name}")]

    return [found for name, child in model.named_children() if child is not base for found in untied(child, name)]


def layer_names(model) -> list[str]:
    """The names adapters can target: the last part of each leaf layer with weights."""
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if name and not list(module.children()) and getattr(module, "weight", None) is not None}
    return sorted(names)


def save(model, folder: Path, base_name: str, saved_base: Path | None) -> None:
    """The adapter, the task model's config and (for a base built from scratch, named
    :data:`SAVED_BASE`) the base into ``folder``; ``adapter_config.json`` names the base."""
    model.save_pretrained(str(folder))
    config = model.get_base_model().config
    config.architectures = [type(model.get_base_model()).__name__]
    config.save_pretrained(str(folder))
    if saved_base is not None:
        os.replace(saved_base, folder / SAVED_BASE)
    path = folder / ADAPTER_CONFIG
    settings = json.loads(path.read_text())
    settings["base_model_name_or_path"] = base_name
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------ inference
def base_of(folder: str, override: str | None) -> str:
    """The base model an adapter folder is loaded onto: ``model.base`` when set, else the
    one its ``adapter_config.json`` names (``base`` = the copy inside the folder)."""
    if override:
        return override
    try:
        name = json.loads(Path(folder, ADAPTER_CONFIG).read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as exc:
        raise TaskhubError(f"adapter folder '{folder}': unreadable {ADAPTER_CONFIG} ({exc}); set model.base=<base model>") from None
    inside = os.path.join(folder, name) if name else ""
    return inside if name and os.path.isdir(inside) else name


def check_base(folder: str, base: str, exists: bool) -> None:
    if not exists:
        raise TaskhubError(
            f"adapter folder '{folder}': its base model '{base}' cannot be found; set model.base=<the base model's folder or hub id>"
        )


def attach(model, folder: str):
    """The base model with the adapter of ``folder`` loaded, merged into its weights when
    the method allows (LoRA, IA3: plain layers, inference at full speed), and the names of
    the weights the adapter supplies (its trained head)."""
    import peft
    from safetensors import safe_open

    adapted = peft.PeftModel.from_pretrained(model, folder)
    weights = os.path.join(folder, "adapter_model.safetensors")
    supplied: set[str] = set()
    if os.path.isfile(weights):
        with safe_open(weights, "pt") as f:
            supplied = {key.removeprefix("base_model.model.") for key in f.keys()}
    if adapted.peft_config["default"].is_prompt_learning:
        return adapted, supplied
    return adapted.merge_and_unload(), supplied
