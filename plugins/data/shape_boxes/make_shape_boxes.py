"""Generate the synthetic scenes of the ``object_detection`` demo: coloured squares, circles
and triangles on noisy backgrounds, each with its bounding box.

Run from anywhere: ``python plugins/data/shape_boxes/make_shape_boxes.py``. Deterministic
(fixed seed), so re-running reproduces the files byte for byte.

The scenes are drawn as those of ``shape_masks`` (the segmentation demo) are: 64x64 RGB, a
smooth gradient between two random colours plus Gaussian pixel noise, and 1 to 3 shapes
in random colours (the colour says nothing about the class: the model must learn the
outline). For detection the shapes do not overlap (a box is only drawn where it keeps a
pixel's gap to the others), so every box holds its whole object. A box is written in
pixels, ``xmin``/``ymin`` the first pixel the shape covers and ``xmax``/``ymax`` one past
the last (so ``xmax - xmin`` is its width), as COCO and the detection pipelines count.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
LABELS = ["square", "circle", "triangle"]
SIZE = 64
SPLITS = {"train": 320, "validation": 40, "test": 80}
SEED = 21


def background(rng: np.random.Generator) -> Image.Image:
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    t = np.cos(angle) * xx + np.sin(angle) * yy
    t = (t - t.min()) / (np.ptp(t) or 1.0)
    pixels = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def free(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    """No overlap with any taken box, with a pixel's gap."""
    return all(box[2] + 1 <= t[0] or t[2] + 1 <= box[0] or box[3] + 1 <= t[1] or t[3] + 1 <= box[1] for t in taken)


def scene(rng: np.random.Generator) -> tuple[Image.Image, list[dict]]:
    image = background(rng)
    pen = ImageDraw.Draw(image)
    taken: list[tuple[int, int, int, int]] = []
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(50):
            size = int(rng.integers(12, 25))
            x0, y0 = (int(v) for v in rng.integers(0, SIZE - size + 1, 2))
            box = (x0, y0, x0 + size, y0 + size)  # xmax, ymax one past the last pixel
            if free(box, taken):
                break
        else:
            continue  # no room left for another shape
        label = int(rng.integers(len(LABELS)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        corners = [x0, y0, x0 + size - 1, y0 + size - 1]  # PIL's boxes include their last pixel
        if LABELS[label] == "square":
            pen.rectangle(corners, fill=colour)
        elif LABELS[label] == "circle":
            pen.ellipse(corners, fill=colour)
        else:
            up = rng.random() < 0.5
            tip, base = (y0, y0 + size - 1) if up else (y0 + size - 1, y0)
            pen.polygon([(x0 + size // 2, tip), (x0, base), (x0 + size - 1, base)], fill=colour)
        taken.append(box)
        objects.append({"label": LABELS[label], "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), box))})
    noise = rng.normal(0, 8, (SIZE, SIZE, 3))
    noisy = np.clip(np.asarray(image, dtype=float) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, "RGB"), objects


def main() -> None:
    rng = np.random.default_rng(SEED)
    (HERE / "images").mkdir(exist_ok=True)
    index = 0
    for split, count in SPLITS.items():
        with open(HERE / f"{split}.jsonl", "w") as out:
            for _ in range(count):
                image, objects = scene(rng)
                name = f"images/{index:04d}.png"
                image.save(HERE / name, optimize=True)
                out.write(json.dumps({"image": name, "objects": objects}) + "\n")
                index += 1
        print(split, count)


if __name__ == "__main__":
    main()
