"""Generate the synthetic scenes of the ``image_segmentation`` demo: coloured squares,
circles and triangles on noisy backgrounds, with a per-pixel mask of class indices.

Run from anywhere: ``python plugins/data/shape_masks/make_shape_masks.py``. Deterministic
(fixed seed), so re-running reproduces the files byte for byte.

Each scene is 64x64 RGB: a greyish background (random brightness, a gentle gradient, a
faint tint) and 2 to 4 shapes (side / diameter 14-26 px, boxes at least 2 px apart, so
none hides another) in random saturated colours, plus Gaussian pixel noise. A shape's
colour says nothing about its class (every class takes every colour): colour tells shape
from background, only the outline tells the classes apart. The mask is an 8-bit
grayscale PNG of the same size: 0 background, 1 square, 2 circle, 3 triangle, the pixel
values of the same polygons drawn without antialiasing.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
LABELS = ["background", "square", "circle", "triangle"]
SIZE = 64
SPLITS = {"train": 300, "validation": 50, "test": 50}
SEED = 20


def scene(rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    # Background: a grey of random brightness, lighter on one side, with a faint tint.
    grey, slope = rng.uniform(60, 190), rng.uniform(-40, 40)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1) - 0.5
    level = grey + slope * (np.cos(angle) * xx + np.sin(angle) * yy)
    pixels = level[..., None] + rng.uniform(-12, 12, 3)[None, None, :]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    placed: list[tuple[int, int, int]] = []
    for _ in range(int(rng.integers(2, 5))):
        label = int(rng.integers(1, len(LABELS)))
        for _attempt in range(50):  # a place clear of the shapes already drawn (2 px apart)
            size = int(rng.integers(14, 27))
            x0, y0 = (int(v) for v in rng.integers(0, SIZE - size + 1, 2))
            if all(x0 + size + 2 <= x or x + s + 2 <= x0 or y0 + size + 2 <= y or y + s + 2 <= y0 for x, y, s in placed):
                break
        else:
            continue
        placed.append((x0, y0, size))
        hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.6, 1), rng.uniform(0.55, 1)
        colour = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))
        box = [x0, y0, x0 + size - 1, y0 + size - 1]
        if label == 1:
            shape = ("rectangle", box)
        elif label == 2:
            shape = ("ellipse", box)
        else:
            top = (x0 + size // 2, y0) if rng.random() < 0.5 else (x0 + size // 2, y0 + size - 1)
            base_y = y0 + size - 1 if top[1] == y0 else y0
            shape = ("polygon", [top, (x0, base_y), (x0 + size - 1, base_y)])
        kind, where = shape
        getattr(draw_image, kind)(where, fill=colour)
        getattr(draw_mask, kind)(where, fill=label)
    noise = rng.normal(0, 10, (SIZE, SIZE, 3))
    noisy = np.clip(np.asarray(image, dtype=float) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, "RGB"), mask


def main() -> None:
    rng = np.random.default_rng(SEED)
    (HERE / "images").mkdir(exist_ok=True)
    (HERE / "masks").mkdir(exist_ok=True)
    index = 0
    for split, count in SPLITS.items():
        with open(HERE / f"{split}.jsonl", "w") as out:
            for _ in range(count):
                image, mask = scene(rng)
                name = f"{index:04d}.png"
                image.save(HERE / "images" / name, optimize=True)
                mask.save(HERE / "masks" / name, optimize=True)
                out.write(json.dumps({"image": f"images/{name}", "mask": f"masks/{name}"}) + "\n")
                index += 1
        print(split, count)


if __name__ == "__main__":
    main()
