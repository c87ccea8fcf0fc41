"""Scores of generated text against references, per example with the statistics behind
the corpus figures, for every task that generates text (translation, summarization,
captioning, ...): sacreBLEU's BLEU and chrF (0-100), Google's ROUGE (0-1) and the COCO
caption evaluation's CIDEr (pycocoevalcap), the field's reference implementations."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


def bleu_chrf_examples(predictions: Sequence[str], references: Sequence[str]) -> list[dict[str, Any]]:
    """Sentence BLEU and chrF of each text, with the n-gram counts whose sums give
    sacreBLEU's corpus scores (:func:`corpus_bleu_chrf`)."""
    from sacrebleu.metrics import BLEU, CHRF

    sentence_bleu = BLEU(effective_order=True)
    bleu_stats = BLEU()._extract_corpus_statistics(predictions, [references])
    chrf_stats = CHRF()._extract_corpus_statistics(predictions, [references])
    return [
        {
            "scores": {"bleu": sentence_bleu.sentence_score(p, [r]).score, "chrf": CHRF().sentence_score(p, [r]).score},
            "stats": {"bleu_counts": b, "chrf_counts": c},
        }
        for p, r, b, c in zip(predictions, references, bleu_stats, chrf_stats)
    ]


def corpus_bleu_chrf(columns: Mapping[str, Any]) -> dict[str, float]:
    """Corpus BLEU and chrF from the summed counts of :func:`bleu_chrf_examples`, as
    sacreBLEU's ``corpus_score`` computes them."""
    from sacrebleu.metrics import BLEU, CHRF

    def summed(name):
        return [[int(v) for v in columns[name].sum(axis=0)]]

    return {"bleu": BLEU()._aggregate_and_compute(summed("bleu_counts")).score, "chrf": CHRF()._aggregate_and_compute(summed("chrf_counts")).score}


def rouge_examples(predictions: Sequence[str], references: Sequence[str], types: Sequence[str]) -> list[dict[str, Any]]:
    """ROUGE F-measures of each text (``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum``:
    sentences split for the last); the reported ROUGE is their mean."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
    examples = []
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(split_sentences(reference), split_sentences(prediction))
        examples.append({"scores": {key: scores[key].fmeasure for key in types}})
    return examples


def split_sentences(text: str) -> str:
    """Sentences on separate lines (what ROUGE-Lsum expects), split after . ! or ?"""
    return "\n".join(s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s)


def cider_examples(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[dict[str, Any]]:
    """CIDEr of each caption against its reference(s) (one string or a list), by
    pycocoevalcap's scorer (the COCO caption evaluation's CIDEr: CIDEr-D's clipped n-gram
    counts and length penalty, sigma 6, scaled by 10), on :func:`caption_words`. The
    n-gram weights (idf) come from all the references given, so the corpus CIDEr is the
    mean of these scores; a resample of them keeps the idf of the whole set."""
    from pycocoevalcap.cider.cider_scorer import CiderScorer

    if not predictions:
        return []
    scorer = CiderScorer(n=4, sigma=6.0)
    for prediction, reference in zip(predictions, references, strict=True):
        refs = [reference] if isinstance(reference, str) else list(reference)
        scorer += (" ".join(caption_words(prediction)), [" ".join(caption_words(r)) for r in refs])
    _, scores = scorer.compute_score()
    return [{"scores": {"cider": float(score)}} for score in scores]


def caption_words(text: str) -> list[str]:
    """Lowercased words without punctuation, as the COCO evaluation feeds CIDEr. Its
    PTBTokenizer needs Java (Stanford CoreNLP); this keeps letters, digits and inner
    apostrophes and splits on everything else, so a contraction stays one word
    ("don't", where PTB gives "do n't") and a hyphenated word becomes two."""
    return re.findall(r"[^\W_]+(?:'[^\W_]+)*", text.lower())
