"""The model card written next to a trained model (``model/README.md``): what a person
finding the folder needs to know to trust and reuse it, in the Hugging Face card format
(YAML metadata block + Markdown)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskhub.config import RunConfig
    from taskhub.task import Task


def render_model_card(task: Task, run: RunConfig, metrics: dict[str, Any], data: dict[str, str | None], training_args: dict[str, Any]) -> str:
    base = run.model.name_or_path or task.default_model or "trained from scratch from a config"
    labels = list((getattr(task.model.config, "id2label", None) or {}).values())
    shown_labels = labels if len(labels) <= 50 else labels[:50] + [f"... ({len(labels)} in all)"]
    scores = {
        k: v for k, v in metrics.items()
        if isinstance(v, (int, float)) and not k.startswith("train_") and not k.endswith(("_runtime", "_per_second"))
    }  # fmt: skip
    args = {k: training_args[k] for k in ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "seed", "weight_decay") if k in training_args}
    lines = [
        "---",
        "library_name: transformers",
        f"tags: [taskhub, {task.name}]",
        *([f"base_model: {base}"] if run.model.name_or_path else []),
        "---",
        "",
        f"# {task.name} model trained with taskhub",
        "",
        f"- **Task:** `{task.name}` ({task.auto_model})",
        f"- **Base model:** {base}",
        *[f"- **{split.capitalize()} data:** {path}" for split, path in data.items() if path],
    ]
    if shown_labels:
        lines.append(f"- **Labels ({len(labels)}):** {', '.join(map(str, shown_labels))}")
    lines += ["", "## Evaluation", ""]
    if scores:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scores.items()]
    else:
        lines.append("No held-out split was given, so there are no evaluation figures.")
    lines += [
        "",
        "## Training arguments",
        "",
        "```json",
        json.dumps(args, indent=2),
        "```",
        "",
        "(all of them in `training_args.json`)",
        "",
        "## Use it",
        "",
        "```bash",
        f"taskhub task={task.name} mode=predict model.name_or_path=<this folder> data.predict=<file>",
        f"taskhub task={task.name} mode=evaluate model.name_or_path=<this folder> data.test=<file>",
        "```",
        "",
        "```python",
        "import taskhub",
        f'task = taskhub.load_task("{task.name}", model="<this folder>")',
        "task.predict([{...}])",
        "```",
        "",
    ]
    return "\n".join(lines)
