"""Uncertainty of evaluation metrics from per-example scores: a bootstrap interval for one
model, and paired tests (paired bootstrap; exact McNemar for accuracy-like 0/1 scores)
for two models on the same examples. On a 100-row test split, 0.97 against 0.98 is one
example: these say whether a difference is more than that.

The statistic is the task's own aggregate (:meth:`taskhub.Task.aggregate_examples`), so
corpus metrics (entity F1, BLEU, WER) are resampled by example, as lm-evaluation-harness
and sacreBLEU do, not averaged per example.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

CONFIDENCE = 0.95
#: Below this p-value a paired difference is called significant.
ALPHA = 0.05

Columns = Mapping[str, np.ndarray]


def _resamples(rows: int, resamples: int, seed: int):
    """Row indices of each bootstrap resample, drawn with replacement, seeded."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, rows, size=rows)


def _interval(values: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap(columns: Columns, statistic: Callable[[Columns], float], resamples: int, seed: int) -> dict[str, float]:
    """Percentile 95% interval and standard error of ``statistic`` over resampled rows."""
    rows = len(next(iter(columns.values())))
    values = np.array([statistic({k: v[idx] for k, v in columns.items()}) for idx in _resamples(rows, resamples, seed)])
    low, high = _interval(values)
    return {"ci_low": low, "ci_high": high, "stderr": float(np.nanstd(values, ddof=1))}


def paired_test(a: Columns, b: Columns, statistic: Callable[[Columns], float], resamples: int, seed: int, binary: str | None = None) -> dict[str, Any]:
    """Whether ``statistic`` differs between two models scored on the same rows.

    Paired bootstrap: both are resampled with the same row indices, giving an interval for
    the difference (a - b); the two-sided p-value is twice the share of resampled
    differences on the far side of zero. With ``binary`` (a 0/1 score column whose mean is
    the metric, e.g. accuracy), the exact McNemar test on the discordant rows decides instead.
    """
    from scipy.stats import binomtest

    rows = len(next(iter(a.values())))
    difference = statistic(a) - statistic(b)
    diffs = np.array(
        [statistic({k: v[idx] for k, v in a.items()}) - statistic({k: v[idx] for k, v in b.items()}) for idx in _resamples(rows, resamples, seed)]
    )
    low, high = _interval(diffs)
    result: dict[str, Any] = {"difference": float(difference), "ci_low": low, "ci_high": high}
    if binary is not None:
        only_a = int(np.sum((a[binary] == 1) & (b[binary] == 0)))
        only_b = int(np.sum((a[binary] == 0) & (b[binary] == 1)))
        p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        result.update(test="McNemar (exact)", p_value=float(p))
    else:
        far_side = min(np.mean(diffs <= 0), np.mean(diffs >= 0))
        result.update(test="paired bootstrap", p_value=float(min(1.0, 2 * far_side)))
    result["significant"] = bool(result["p_value"] < ALPHA)
    return result


def binary_column(columns: Columns, metric: str) -> str | None:
    """``metric`` when it is a per-row 0/1 score (accuracy, exact match): McNemar applies."""
    values = columns.get(metric)
    return metric if values is not None and values.ndim == 1 and np.isin(values, (0, 1)).all() else None
