"""summarization: condense a text into a short summary with an encoder-decoder model.

transformers 5 removed the summarization pipeline; this task keeps its output field
(``summary_text``). Rows have ``text`` (and ``target``, the reference summary, to train
or evaluate). Evaluation generates a summary of every held-out text, exactly as
``mode=predict`` would, and scores it against the reference with ROUGE-1/2/L/Lsum
(F-measure, 0-1, the ``rouge-score`` package with stemming), plus the mean generated
length in tokens. Shared seq2seq logic: :class:`taskhub.generation.Seq2SeqTask`.

With no model named, a tiny T5 is trained from scratch with a tokenizer learned from the
training split, on bundled synthetic reports (``plugins/data/summarization_demo``).
"""

from __future__ import annotations

from dataclasses import dataclass

from taskhub import TaskSpec, hookimpl
from taskhub.generation import Seq2SeqConfig, Seq2SeqTask
from taskhub.text_metrics import rouge_examples

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass
class SummarizationConfig(Seq2SeqConfig):
    name: str = "summarization"


class Summarization(Seq2SeqTask):
    """Summarize texts with an encoder-decoder model (ROUGE-1/2/L/Lsum)."""

    name = "summarization"
    config_cls = SummarizationConfig
    prediction_fields = ("summary_text",)
    text_field = "summary_text"
    main_metric = "rougeL"
    task_params_key = "summarization"
    demo_data = "pkg://taskhub_plugins/data/summarization_demo"
    demo_description = "Paste a text to get a short summary of it."
    training_defaults = {
        **Seq2SeqTask.training_defaults,
        "num_train_epochs": 5,
        "learning_rate": 5e-3,
        "per_device_train_batch_size": 64,
        "warmup_steps": 20,
    }

    def text_scores(self, predictions, references):
        """ROUGE F-measures of each summary; the reported ROUGE is their mean."""
        return rouge_examples(predictions, references, ROUGE_TYPES)


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(Summarization.name, Summarization, SummarizationConfig)]
