"""Token classification, shared by any token-level task (entities, parts of speech, chunks).

Training: word tags aligned to sub-word tokens (:func:`align_labels`), scored with
seqeval. Prediction: token scores -> entities the way transformers' token-classification
pipeline aggregates them: per token (``none``), adjacent tokens of one type (``simple``),
or whole words first (``first`` / ``average`` / ``max``), then grouped; the entities of
overlapping windows of a long text merged as the pipeline merges ``stride`` windows.
numpy only; seqeval imported when metrics are computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from taskhub.errors import RowError

IGNORE_INDEX = -100  # label of pieces the loss and the metrics skip
WORD_DELIMITER = " "  # joins pre-tokenized words into the text offsets point into (as the pipeline does)


class AggregationStrategy(str, Enum):
    none = "none"
    simple = "simple"
    first = "first"
    average = "average"
    max = "max"


def softmax(logits):
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def gather_tokens(tokenizer, sentence: str, input_ids, scores, offsets, sequence_ids, first_index: int) -> list[dict]:
    """One dict per text token (special tokens skipped): piece, scores, offsets, whether
    it continues a word. Sub-words as the pipeline tells them: by the piece's length
    against its text for tokenizers with a continuing-subword prefix (WordPiece ``##``),
    else by "no space before it"; an unknown token is its text and starts a word."""
    backend = getattr(tokenizer, "_tokenizer", None)
    prefixed = bool(backend is not None and getattr(backend.model, "continuing_subword_prefix", None))
    pieces = tokenizer.convert_ids_to_tokens([int(i) for i in input_ids])
    tokens = []
    for idx, (piece, token_scores, (start, end), seq) in enumerate(zip(pieces, scores, offsets, sequence_ids)):
        if seq is None:
            continue
        text = sentence[start:end]
        if prefixed:
            is_subword = len(piece) != len(text)
        else:
            is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
        if int(input_ids[idx]) == tokenizer.unk_token_id:
            piece, is_subword = text, False
        tokens.append({"word": piece, "scores": token_scores, "start": int(start), "end": int(end), "index": first_index + idx, "is_subword": is_subword})
    return tokens


def aggregate(tokens: list[dict], strategy: AggregationStrategy, id2label: dict[int, str], tokenizer) -> list[dict]:
    """Token dicts -> the pipeline's items: per token with none, else grouped entities."""
    if strategy in (AggregationStrategy.none, AggregationStrategy.simple):
        items = []
        for t in tokens:
            best = int(t["scores"].argmax())
            items.append({"entity": id2label[best], "score": t["scores"][best], "index": t["index"], "word": t["word"], "start": t["start"], "end": t["end"]})
        if strategy is AggregationStrategy.none:
            return items
    else:
        items = [aggregate_word(word, strategy, id2label, tokenizer) for word in split_words(tokens)]
    return group_entities(items, tokenizer)


def aggregate_word(pieces: list[dict], strategy: AggregationStrategy, id2label: dict[int, str], tokenizer) -> dict:
    """One label per word: the first piece's, the most confident piece's, or the argmax of the average."""
    import numpy as np

    if strategy is AggregationStrategy.first:
        scores = pieces[0]["scores"]
    elif strategy is AggregationStrategy.max:
        scores = max(pieces, key=lambda p: p["scores"].max())["scores"]
    else:
        scores = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
    best = int(scores.argmax())
    return {
        "entity": id2label[best],
        "score": scores[best],
        "word": tokenizer.convert_tokens_to_string([p["word"] for p in pieces]),
        "start": pieces[0]["start"],
        "end": pieces[-1]["end"],
    }


def group_entities(items: list[dict], tokenizer) -> list[dict]:
    """Adjacent items of one type join a group unless the next one is a ``B-``."""
    groups: list[list[dict]] = []
    for item in items:
        bi, tag = split_tag(item["entity"])
        if groups and bi != "B" and tag == split_tag(groups[-1][-1]["entity"])[1]:
            groups[-1].append(item)
        else:
            groups.append([item])
    return [entity_group(group, tokenizer) for group in groups]


def entity_group(items: list[dict], tokenizer) -> dict:
    import numpy as np

    return {
        "entity_group": items[0]["entity"].split("-", 1)[-1],
        "score": np.nanmean([i["score"] for i in items]),
        "word": tokenizer.convert_tokens_to_string([i["word"] for i in items]),
        "start": items[0]["start"],
        "end": items[-1]["end"],
    }


def split_words(tokens: list[dict]) -> list[list[dict]]:
    """Tokens -> words: a new word at every token that does not continue one."""
    words: list[list[dict]] = []
    for token in tokens:
        if words and token["is_subword"]:
            words[-1].append(token)
        else:
            words.append([token])
    return words


def split_tag(label: str) -> tuple[str, str]:
    """``B-PER`` -> (B, PER); a label without a B-/I- prefix continues like an I-."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def merge_overlapping(entities: list[dict]) -> list[dict]:
    """Entities of all windows -> one list, as the pipeline merges ``stride`` windows: by
    start; an entity starting inside the kept one replaces it if longer, or as long and
    more confident."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    merged, kept = [], entities[0]
    for entity in entities[1:]:
        if kept["start"] <= entity["start"] < kept["end"]:
            length, kept_length = entity["end"] - entity["start"], kept["end"] - kept["start"]
            if length > kept_length or (length == kept_length and entity["score"] > kept["score"]):
                kept = entity
        else:
            merged.append(kept)
            kept = entity
    merged.append(kept)
    return merged


def merge_tokens(items: list[dict]) -> list[dict]:
    """Per-token items (none) of all windows: one per token position, the more confident
    where two windows both predicted it, in token order (the pipeline has no stride for none)."""
    best: dict[int, dict] = {}
    for item in items:
        if item["index"] not in best or item["score"] > best[item["index"]]["score"]:
            best[item["index"]] = item
    return [best[i] for i in sorted(best)]


def to_python(entity: dict[str, Any]) -> dict[str, Any]:
    """Numbers as plain Python floats (numpy scalars do not serialise)."""
    return {k: float(v) if k == "score" else v for k, v in entity.items()}


def check_words(i: int, words, column: str) -> None:
    if words is None:
        raise RowError(i, f"missing '{column}' (a list of words)")
    if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
        raise RowError(i, f"{column} must be a list of strings (words)")


def word_starts(words: Sequence[str]) -> list[int]:
    """Character offset of each word in ``" ".join(words)``."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + len(WORD_DELIMITER)
    return starts


def align_labels(
    word_ids: Sequence[int | None], tags: Sequence[str], label2id: Mapping[str, int], label_all_tokens: bool = False
) -> list[int]:
    """Word tags -> one label id per token: special tokens -100; a word's first piece its
    tag; later pieces -100, or with ``label_all_tokens`` the tag with ``B-`` made ``I-``."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE_INDEX)
        elif word != previous:
            labels.append(label2id[tags[word]])
        elif label_all_tokens:
            tag = tags[word]
            continued = "I-" + tag[2:] if tag.startswith("B-") else tag
            labels.append(label2id.get(continued, label2id[tag]))
        else:
            labels.append(IGNORE_INDEX)
        previous = word
    return labels


def seqeval_metrics(y_true: list[list[str]], y_pred: list[list[str]]) -> dict[str, float]:
    """Entity-level precision / recall / F1 (seqeval's default, conlleval-style), token
    accuracy, and ``f1_<TYPE>`` for every type among the references or predictions."""
    import warnings

    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    with warnings.catch_warnings():  # seqeval averages empty lists when there is no entity at all
        warnings.simplefilter("ignore", RuntimeWarning)
        metrics = {
            "precision": float(precision_score(y_true, y_pred, zero_division=0)),
            "recall": float(recall_score(y_true, y_pred, zero_division=0)),
            "f1": float(f1_score(y_true, y_pred, zero_division=0)),
            "accuracy": float(accuracy_score(y_true, y_pred)),
        }
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    for name, values in sorted(report.items()):
        if not name.endswith(" avg"):
            metrics[f"f1_{name}"] = float(values["f1-score"])
    return metrics


def sentence_scores(y_true: list[list[str]], y_pred: list[list[str]]) -> list[dict[str, Any]]:
    """Per sentence: entity F1, and the counts whose sums give seqeval's corpus precision /
    recall / F1 and accuracy (:func:`seqeval_from_counts`), for bootstrap intervals and
    paired tests over sentences."""
    from seqeval.metrics.sequence_labeling import get_entities

    examples = []
    for true, pred in zip(y_true, y_pred):
        gold, found = set(get_entities(true)), set(get_entities(pred))
        correct = len(gold & found)
        f1 = 2 * correct / (len(gold) + len(found)) if gold or found else 1.0
        stats = {
            "correct": correct, "predicted": len(found), "gold": len(gold),
            "tokens_correct": sum(t == p for t, p in zip(true, pred)), "tokens": len(true),
        }  # fmt: skip
        examples.append({"prediction": pred, "reference": true, "scores": {"f1": f1}, "stats": stats})
    return examples


def seqeval_from_counts(columns: Mapping[str, Any]) -> dict[str, float]:
    """seqeval's micro precision / recall / F1 and token accuracy, by its formulas, from the
    summed counts of :func:`sentence_scores` (columns of arrays, one value per sentence)."""
    correct, predicted, gold = (float(columns[k].sum()) for k in ("correct", "predicted", "gold"))
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    tokens = float(columns["tokens"].sum())
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": float(columns["tokens_correct"].sum()) / tokens if tokens else 0.0}
