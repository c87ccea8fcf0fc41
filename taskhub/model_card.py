"""The model card written next to a trained model (``model/README.md``), ready for the
Hugging Face Hub: the metadata block the Hub reads (``base_model``, ``pipeline_tag``,
``library_name``, ``datasets``, ``model-index`` with the held-out metrics), what the model
is for and where it falls short (from scratch, data limits, row counts), and a runnable
example on a real input from the data. No local absolute paths: the folder is meant to
travel."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskhub.config import RunConfig
    from taskhub.task import Task

#: Hub pipeline tags where they differ from the task name with dashes.
def pipeline_tag(task: Task) -> str:
    return task.pipeline_tag or task.name.replace("_", "-")


def shown_path(path: str | None) -> str | None:
    """A data or model location as the card shows it: hub ids and ``pkg://`` names as they
    are, local paths by their file name only."""
    if not path:
        return None
    if path.startswith(("pkg://", "hf://")) or not (os.path.isabs(path) or path.startswith((".", "~")) or os.path.exists(path)):
        return path
    return os.path.basename(os.path.normpath(path))


def hub_id(name: str | None) -> str | None:
    """``name`` if it reads as a Hub repository id (``org/name``), else None."""
    if not name or name.startswith(("pkg://", ".", "/", "~")) or name.count("/") != 1 or os.path.exists(name):
        return None
    return name


def render_model_card(task: Task, run: RunConfig, metrics: dict[str, Any], splits: list, training_args: dict[str, Any]) -> str:
    import yaml

    from taskhub.modeling import model_source

    source = model_source(task)
    named = run.model.name_or_path or task.default_model
    from_scratch = source.from_scratch
    base = shown_path(named) if named else None
    adapter = run.model.peft.method != "none" and not run.model.peft.merge
    labels = task.label_names()
    shown_labels = labels if len(labels) <= 50 else labels[:50] + [f"... ({len(labels)} in all)"]
    scores = {
        k: v for k, v in metrics.items()
        if isinstance(v, (int, float)) and not k.startswith(("train_", "before_")) and not k.endswith(("_runtime", "_per_second", "_preparation_time"))
    }  # fmt: skip
    rows = {split.name: None if split.streaming else len(split.raw) for split in splits}
    args = {k: training_args[k] for k in ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "seed", "weight_decay") if k in training_args}

    meta: dict[str, Any] = {"library_name": "peft" if adapter else "transformers", "pipeline_tag": pipeline_tag(task), "tags": ["taskhub", task.name]}
    if hub_id(named) and not from_scratch:
        meta["base_model"] = named
    if hub_id(run.data.dataset):
        meta["datasets"] = [run.data.dataset]
    results = _model_index(task, scores, run)
    if results:
        meta["model-index"] = [{"name": f"{task.name}-taskhub", "results": results}]

    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "", f"# {task.name} model trained with taskhub", ""]
    lines += [
        f"- **Task:** `{task.name}` ({task.auto_model}, pipeline `{pipeline_tag(task)}`)",
        f"- **Base model:** {'none: ' if from_scratch else ''}{_base_text(base, source, from_scratch)}",
    ]
    if run.model.peft.method != "none":
        peft = run.model.peft
        what = "merged into the weights" if peft.merge else "saved as an adapter (`adapter_config.json`); load it with taskhub or peft on the base model"
        trained = metrics.get("train_trainable_parameters"), metrics.get("train_total_parameters")
        share = f", {trained[0]:,.0f} of {trained[1]:,.0f} parameters trained" if all(trained) else ""
        lines.append(f"- **Fine-tuning:** {peft.method} (peft){share}; {what}")
    lines += [f"- **{name.capitalize()} data:** {shown_path(split.path)} ({_rows(rows[name])})" for name, split in ((s.name, s) for s in splits)]
    if shown_labels:
        lines.append(f"- **Labels ({len(labels)}):** {', '.join(map(str, shown_labels))}")
    lines += ["", "## Intended use and limitations", "", _intended_use(task)]
    lines += [f"- {note}" for note in _limitations(run, from_scratch, rows)]
    lines += ["", "## Evaluation", ""]
    if scores:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scores.items()]
    else:
        lines.append("No held-out split was given, so there are no evaluation figures.")
    lines += ["", "## Training arguments", "", "```json", json.dumps(args, indent=2), "```", "", "(all of them in `training_args.json`; the loss history in `trainer_state.json`)"]
    example = _example(task, splits)
    lines += [
        "",
        "## Use it",
        "",
        "In Python (`pip install taskhub`), from this folder (or `huggingface_hub.snapshot_download(\"<repo id>\")`):",
        "",
        "```python",
        "import taskhub",
        "",
        f'task = taskhub.load_task("{task.name}", model=".")',
        f"print(task.predict([{example}]))",
        "```",
        "",
        "From the command line:",
        "",
        "```bash",
        f"taskhub task={task.name} mode=predict model.name_or_path=<this folder> data.predict=<your file>",
        f"taskhub task={task.name} mode=evaluate model.name_or_path=<this folder> data.test=<your file>",
        "```",
        "",
    ]
    return "\n".join(lines)


def _rows(count: int | None) -> str:
    return "streamed" if count is None else f"{count:,} rows"


def _base_text(base: str | None, source, from_scratch: bool) -> str:
    if base is None:
        return f"random weights from a `{source.config.get('model_type', 'model')}` config"
    return f"random weights from the config of {base}" if from_scratch else base


def _intended_use(task: Task) -> str:
    description = (type(task).__doc__ or "").strip().splitlines()[0] if type(task).__doc__ else ""
    return f"{description} Check it on data like yours before relying on it; it knows only what its training data showed it.".strip()


def _limitations(run: RunConfig, from_scratch: bool, rows: dict[str, int | None]) -> list[str]:
    notes = []
    if from_scratch:
        notes.append("Trained from scratch (random initial weights), not fine-tuned from a pretrained model: expect it to know little beyond its training data.")
    if run.data.limit:
        notes.append(f"Trained and evaluated on at most the first {run.data.limit:,} rows of each split (`data.limit`): a quick run, not a full one.")
    train_rows = rows.get("train")
    if train_rows is not None and train_rows < 1000:
        notes.append(f"Small training set ({train_rows:,} rows): the held-out figures below have wide error bars.")
    if "validation" not in rows and "test" not in rows:
        notes.append("No held-out data was evaluated.")
    return notes


def _example(task: Task, splits: list) -> str:
    """A real input row (the input columns of the first held-out row, else a training row)
    as Python source; file paths (images, audio) by their file name."""
    ordered = sorted(splits, key=lambda s: s.name == "train")
    for split in ordered:
        if split.streaming or not len(split.dataset):
            continue
        row = split.dataset[0]
        columns = [c for c in (*task.input_columns, *task.optional_columns) if row.get(c) is not None]
        record = {c: os.path.basename(row[c]) if c in task.path_columns and isinstance(row[c], str) else row[c] for c in columns}
        return repr(record)
    return repr({c: "..." for c in task.input_columns})


def _model_index(task: Task, scores: dict[str, Any], run: RunConfig) -> list[dict[str, Any]]:
    """The Hub's ``model-index`` results: one entry per held-out split with its metrics."""
    dataset = hub_id(run.data.dataset)
    results = []
    for split in ("test", "validation"):
        metrics = [
            {"type": key.removeprefix(f"{split}_"), "value": round(float(value), 4), "name": f"{split} {key.removeprefix(f'{split}_')}"}
            for key, value in scores.items() if key.startswith(f"{split}_")
        ]  # fmt: skip
        if metrics:
            data = {"name": dataset or f"{task.name} data (taskhub)", "type": dataset or "custom", "split": split}
            results.append({"task": {"type": pipeline_tag(task)}, "dataset": data, "metrics": metrics})
    return results
