"""Caption rows for the bundled digits (``../digits``), the demo data of ``zero_shot_image_classification``.

Run from anywhere: ``python plugins/data/digit_captions/make_digit_captions.py``.
Deterministic (fixed seed). The images are not copied: every row names its image by a
path relative to this folder (``../digits/images/0042.png``), which taskhub resolves
against the data file's folder, in the repository and in the installed package alike.

* ``train.jsonl``: ``{"image", "text"}``, one caption per image of the digits' train
  split, from one of several templates that name the digit as a word or a numeral
  ("a photo of the digit seven", "a handwritten 7", ...): image-caption pairs for the
  contrastive loss. No class label: the model never sees one.
* ``test.jsonl``: ``{"image", "label", "candidate_labels"}`` for the digits' test split,
  the label the digit's name ("seven"), with the ten names as the row's own candidate
  labels (the demo's examples show them).

No validation split: taskhub (at this commit) names the encoded validation split of a task
with a name this long by a ``datasets`` fingerprint over 64 characters, which ``datasets``
refuses (see README.md). The digits' validation images are left out.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent / "digits"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
#: {word}: the digit's name, {numeral}: the digit. The zero-shot prompts at test time are
#: the task's default template, "This is a photo of {}." with the name: one of these forms.
TEMPLATES = [
    "a photo of the digit {word}",
    "This is a photo of {word}.",
    "a handwritten {word}",
    "a small picture of the number {word}",
    "the digit {numeral}",
    "a handwritten {numeral}",
]


def main() -> None:
    rng = random.Random(0)
    for split in ("train", "test"):
        rows = [json.loads(line) for line in (DIGITS / f"{split}.jsonl").read_text().splitlines()]
        out = []
        for row in rows:
            image = f"../digits/{row['image']}"
            digit = int(row["label"])
            if split == "train":
                template = rng.choice(TEMPLATES)
                out.append({"image": image, "text": template.format(word=NAMES[digit], numeral=digit)})
            else:
                out.append({"image": image, "label": NAMES[digit], "candidate_labels": NAMES})
        (HERE / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
        print(split, len(out))


if __name__ == "__main__":
    main()
