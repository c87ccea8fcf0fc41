"""Length-grouped training's sampler: the rows' lengths as transformers' ``LengthGroupedSampler``
reads them (``dataset[i]`` for every row) against taskhub's read from the Arrow column
(``taskhub.modes.trainer.token_lengths``), in one process, on a synthetic encoded training
set of 5-120 token rows. The sampler is built once at the start of every training run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/length_sampler.py [rows]
"""

from __future__ import annotations

import random
import statistics
import sys
import time


def main(rows: int = 200_000, rounds: int = 3) -> None:
    import datasets
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from taskhub.modes.trainer import token_lengths

    rng = random.Random(0)
    lengths = [rng.randint(5, 120) for _ in range(rows)]
    data = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in lengths], "attention_mask": [[1] * n for n in lengths], "labels": [0] * rows})
    timings: dict[str, list[float]] = {"transformers, row by row": [], "taskhub, from Arrow": []}
    for _ in range(rounds):
        for name, read in (("transformers, row by row", lambda: LengthGroupedSampler(32, dataset=data).lengths),
                           ("taskhub, from Arrow", lambda: token_lengths(data, "input_ids"))):
            started = time.perf_counter()
            assert read() == lengths, name
            timings[name].append(time.perf_counter() - started)
    base = statistics.median(timings["transformers, row by row"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:28s} {median:8.4f} s  x{base / median:,.0f}  {[round(v, 4) for v in values]}")
    print(f"{rows:,} rows, {rounds} rounds, medians; same lengths from both")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
