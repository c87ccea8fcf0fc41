"""Export scikit-learn's digits (1,797 real 8x8 handwritten digits) as PNG files + JSONL splits.

Run from anywhere: ``python plugins/data/digits/make_digits.py``. Deterministic:
stratified 70/15/15 split with a fixed seed, so re-running reproduces the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent


def main() -> None:
    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    ids = np.arange(len(pixels))
    train, rest = train_test_split(ids, test_size=0.3, stratify=digits.target, random_state=0)
    validation, test = train_test_split(rest, test_size=0.5, stratify=digits.target[rest], random_state=0)
    (HERE / "images").mkdir(exist_ok=True)
    for i in ids:
        Image.fromarray(pixels[i], mode="L").save(HERE / "images" / f"{i:04d}.png", optimize=True)
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        with open(HERE / f"{name}.jsonl", "w") as out:
            for i in sorted(split):
                out.write(json.dumps({"image": f"images/{i:04d}.png", "label": str(digits.target[i])}) + "\n")
        print(name, len(split))


if __name__ == "__main__":
    main()
