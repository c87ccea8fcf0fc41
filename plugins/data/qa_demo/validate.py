"""Check the qa_demo splits and print the numbers used in README.md.

    python plugins/data/qa_demo/validate.py

Checks, for train.jsonl, validation.jsonl and test.jsonl:

- every row has the fields id, question, context and answers, with one non-empty gold
  answer, and context[answer_start:answer_start + len(text)] == text;
- ids are unique over all splits, and no question appears twice within a context;
- no context text is shared between splits, and no two contexts in different splits share
  more than 3 runs of 8 words, that is a passage of 11 words or more (so train holds no copied
  or lightly edited validation/test passage; a common phrase of 8-10 words is only reported);
- no question text is shared between train and validation/test.

Exits with status 1 and lists the problems if any check fails.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPLITS = ("train", "validation", "test")
NGRAM = 8
MAX_SHARED_NGRAMS = 3
LONG_WORDS = 300  # "long" contexts have answers beyond this many words


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def main() -> int:
    problems: list[str] = []
    notes: list[str] = []
    rows = {s: [json.loads(line) for line in (HERE / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()] for s in SPLITS}
    ids: dict[str, str] = {}
    for split, split_rows in rows.items():
        seen_questions: set[tuple[str, str]] = set()
        for n, row in enumerate(split_rows, 1):
            where = f"{split}:{n}"
            if set(row) != {"id", "question", "context", "answers"}:
                problems.append(f"{where}: fields {sorted(row)}")
                continue
            if row["id"] in ids:
                problems.append(f"{where}: id {row['id']} also in {ids[row['id']]}")
            ids[row["id"]] = where
            texts, starts = row["answers"]["text"], row["answers"]["answer_start"]
            if len(texts) != 1 or len(starts) != 1 or not texts[0].strip():
                problems.append(f"{where}: expected one non-empty answer, got {row['answers']}")
                continue
            text, start = texts[0], starts[0]
            if row["context"][start : start + len(text)] != text:
                problems.append(f"{where}: {text!r} is not at answer_start {start}")
            if text != text.strip():
                problems.append(f"{where}: answer {text!r} has surrounding spaces")
            if not row["question"].strip().endswith("?"):
                problems.append(f"{where}: question does not end with '?': {row['question']!r}")
            key = (row["context"], row["question"])
            if key in seen_questions:
                problems.append(f"{where}: duplicate question {row['question']!r}")
            seen_questions.add(key)

    contexts = {s: sorted({r["context"] for r in rows[s]}) for s in SPLITS}
    grams = {s: [ngrams(c) for c in contexts[s]] for s in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = set(contexts[a]) & set(contexts[b])
            for c in shared:
                problems.append(f"context shared by {a} and {b}: {c[:60]!r}...")
            for ca, ga in zip(contexts[a], grams[a]):
                for cb, gb in zip(contexts[b], grams[b]):
                    common = ga & gb
                    if common and ca not in shared:
                        report = problems.append if len(common) > MAX_SHARED_NGRAMS else notes.append
                        report(f"{a} and {b} contexts share {len(common)} {NGRAM}-word runs, e.g. "
                                        f"{' '.join(next(iter(common)))!r}: {ca[:40]!r} / {cb[:40]!r}")
    held_out_questions = {r["question"].strip().lower() for s in ("validation", "test") for r in rows[s]}
    for r in rows["train"]:
        if r["question"].strip().lower() in held_out_questions:
            problems.append(f"train question also in validation/test: {r['question']!r}")

    print(f"{'split':<11} {'contexts':>8} {'questions':>9} {'long':>5} {'beyond 300':>10} {'words (short)':>14} {'words (long)':>13}")
    totals = defaultdict(int)
    for split in SPLITS:
        by_context = defaultdict(list)
        for r in rows[split]:
            by_context[r["context"]].append(r)
        beyond = sum(len(r["context"][: r["answers"]["answer_start"][0]].split()) > LONG_WORDS for r in rows[split])
        long_ = [c for c in by_context if len(c.split()) > 350]
        short_lengths = sorted(len(c.split()) for c in by_context if c not in long_)
        long_lengths = sorted(len(c.split()) for c in long_)
        span = lambda xs: f"{xs[0]}-{xs[-1]}" if xs else "-"  # noqa: E731
        print(f"{split:<11} {len(by_context):>8} {len(rows[split]):>9} {len(long_):>5} {beyond:>10} "
              f"{span(short_lengths):>14} {span(long_lengths):>13}")
        for k, v in (("contexts", len(by_context)), ("questions", len(rows[split])), ("long", len(long_)), ("beyond", beyond)):
            totals[k] += v
    print(f"{'total':<11} {totals['contexts']:>8} {totals['questions']:>9} {totals['long']:>5} {totals['beyond']:>10}")
    answer_words = [len(r["answers"]["text"][0].split()) for s in SPLITS for r in rows[s]]
    print(f"answers: {sum(n <= 2 for n in answer_words)} of {len(answer_words)} have 1-2 words, longest has {max(answer_words)}")

    for n in notes:
        print("note:", n)
    for p in problems:
        print("PROBLEM:", p)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
