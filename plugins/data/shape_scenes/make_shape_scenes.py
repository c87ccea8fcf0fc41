"""Draw synthetic scenes of coloured shapes and caption each from what was drawn.

Run from anywhere: ``python plugins/data/shape_scenes/make_shape_scenes.py``. Deterministic
(a fixed seed), so re-running reproduces the files byte for byte.

Each 32x32 image holds one to three shapes (square, circle, triangle; red, green, blue,
yellow) in distinct cells of a 2x2 grid, with jittered size and position on a light,
slightly varying background. The caption is written from the drawn contents alone, in a
fixed order (squares, circles, triangles; then red, green, blue, yellow), e.g.
"two red squares and a blue circle", "a green circle, a yellow circle and a red triangle".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 32
CELL = SIZE // 2
SHAPES = ("square", "circle", "triangle")
COLOURS = {"red": (215, 45, 40), "green": (40, 160, 60), "blue": (45, 80, 215), "yellow": (225, 195, 30)}
COUNTS = {1: "a", 2: "two", 3: "three"}
SPLITS = {"train": 600, "validation": 100, "test": 100}


def caption(objects: list[tuple[str, str]]) -> str:
    """(colour, shape) pairs -> "two red squares and a blue circle" (a fixed order of groups)."""
    counts = Counter(objects)
    groups = sorted(counts, key=lambda cs: (SHAPES.index(cs[1]), list(COLOURS).index(cs[0])))
    parts = [f"{COUNTS[counts[g]]} {g[0]} {g[1]}{'s' if counts[g] > 1 else ''}" for g in groups]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def draw(rng: np.random.RandomState) -> tuple[Image.Image, str]:
    background = tuple(int(v) for v in rng.randint(225, 256, size=3))
    image = Image.new("RGB", (SIZE, SIZE), background)
    pen = ImageDraw.Draw(image)
    n = rng.randint(1, 4)
    cells = rng.permutation(4)[:n]
    objects = []
    for cell in cells:
        colour = list(COLOURS)[rng.randint(len(COLOURS))]
        shape = SHAPES[rng.randint(len(SHAPES))]
        side = rng.randint(9, 13)
        x0 = (cell % 2) * CELL + rng.randint(0, CELL - side + 1)
        y0 = (cell // 2) * CELL + rng.randint(0, CELL - side + 1)
        box = (x0, y0, x0 + side - 1, y0 + side - 1)
        fill = tuple(int(np.clip(v + rng.randint(-20, 21), 0, 255)) for v in COLOURS[colour])
        if shape == "square":
            pen.rectangle(box, fill=fill)
        elif shape == "circle":
            pen.ellipse(box, fill=fill)
        else:
            pen.polygon([(x0 + (side - 1) / 2, y0), (x0, y0 + side - 1), (x0 + side - 1, y0 + side - 1)], fill=fill)
        objects.append((colour, shape))
    return image, caption(objects)


def main() -> None:
    rng = np.random.RandomState(0)
    (HERE / "images").mkdir(exist_ok=True)
    index = 0
    for split, rows in SPLITS.items():
        with open(HERE / f"{split}.jsonl", "w") as out:
            for _ in range(rows):
                image, text = draw(rng)
                name = f"images/{index:04d}.png"
                image.save(HERE / name, optimize=True)
                out.write(json.dumps({"image": name, "text": text}) + "\n")
                index += 1
        print(split, rows)


if __name__ == "__main__":
    main()
