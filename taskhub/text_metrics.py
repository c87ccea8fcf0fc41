"""Scores of generated text against references, per example with the statistics behind
the corpus figures, for every task that generates text (translation, summarization,
captioning, ...): sacreBLEU's BLEU and chrF (0-100) and Google's ROUGE (0-1), the field's
reference implementations."""

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
