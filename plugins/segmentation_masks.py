"""image_segmentation's masks: reading a row's mask (a PNG of class indices, bytes, an
array), the class names stored beside a mask dataset, and the COCO run-length encoding
predictions carry (:func:`encode_mask` / :func:`decode_mask`, as pycocotools encodes)."""

from __future__ import annotations

import json
import os
from typing import Any

from taskhub import RowError, TaskhubError
from taskhub.media import library_message, stored_file

#: Files naming the classes of a mask dataset, looked for beside its masks.
ID2LABEL_FILE = "id2label.json"
README_FILE = "README.md"


def encode_mask(binary) -> dict[str, Any]:
    """A 2-D boolean mask -> COCO uncompressed RLE ``{"size": [h, w], "counts": [...]}``."""
    import numpy as np

    binary = np.asarray(binary, dtype=bool)
    flat = binary.ravel(order="F")
    if not flat.size:
        return {"size": list(binary.shape), "counts": []}
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    return {"size": [int(s) for s in binary.shape], "counts": ([0] if flat[0] else []) + counts}


def decode_mask(rle: dict[str, Any]):
    """COCO uncompressed RLE -> a 2-D boolean numpy array (height x width)."""
    import numpy as np

    height, width = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    if values.size != height * width:
        raise ValueError(f"RLE counts add up to {values.size} pixels, not {height}x{width}")
    return values.reshape((height, width), order="F")


def mask_image(rle: dict[str, Any]):
    """COCO uncompressed RLE -> the pipeline's mask: a PIL image, mode L, 255 inside."""
    import numpy as np
    from PIL import Image

    return Image.fromarray(decode_mask(rle).astype(np.uint8) * 255, mode="L")


def load_mask(value: Any, index: int):
    """A mask (file path, encoded bytes, ``{bytes, path}``, PIL image or 2-D array) -> a
    2-D integer numpy array of class indices; RowError if it is unreadable or not one
    channel of indices."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    from taskhub.dataroot import checked_path
    from taskhub.media import ORIENTATION

    what = "mask"
    if isinstance(value, dict) and value.keys() <= {"bytes", "path"}:
        value = stored_file(value, index, "mask")
    if isinstance(value, (str, os.PathLike, bytes, bytearray)):
        binary = isinstance(value, (bytes, bytearray))
        what = f"mask bytes ({len(value)} bytes)" if binary else f"mask {os.fspath(value)}"
        try:
            with Image.open(io.BytesIO(value) if binary else checked_path(value)) as opened:
                opened.load()
                image = opened.copy()
                image.info.update(opened.info)
                if opened.getexif().get(ORIENTATION, 1) != 1:  # turned as its image is (load_image)
                    image = ImageOps.exif_transpose(opened)
        except FileNotFoundError:
            raise RowError(index, f"mask file not found: {os.fspath(value)}") from None
        except Exception as exc:
            raise RowError(index, f"cannot read {what}: {library_message(exc)}") from None
        value = image
    if isinstance(value, Image.Image):
        if value.mode not in ("L", "P", "I", "I;16", "1"):
            raise RowError(index, f"{what} is a {value.mode} image; a mask is one channel of class indices (8-bit grayscale or palette PNG)")
        array = np.asarray(value)
    elif hasattr(value, "__array__"):
        array = np.asarray(value)
    else:
        raise RowError(index, f"mask must be a file path, image bytes, PIL image or 2-D array, got {type(value).__name__}")
    if array.ndim != 2:
        raise RowError(index, f"{what} has shape {tuple(array.shape)}; a mask is one channel of class indices (height x width)")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer) or (array.size and array.min() < 0):
        raise RowError(index, f"{what} holds {array.dtype} values; class indices are integers from 0")
    return array, what


def labels_beside(mask_path: str) -> list[str] | None:
    """Class names from an ``id2label.json`` or a README.md's YAML front matter (``labels:``)
    in the folder of ``mask_path`` or the one above it; None if there is neither."""
    folder = os.path.dirname(os.path.abspath(mask_path))
    for where in (folder, os.path.dirname(folder)):
        path = os.path.join(where, ID2LABEL_FILE)
        if os.path.isfile(path):
            try:
                mapping = {int(k): str(v) for k, v in json.loads(open(path, encoding="utf-8").read()).items()}
                return [mapping.get(i, str(i)) for i in range(max(mapping, default=-1) + 1)]  # a gap: named by its index
            except (ValueError, TypeError, AttributeError) as exc:
                raise TaskhubError(f"{path}: not an id2label mapping of class indices to names ({exc})") from None
        path = os.path.join(where, README_FILE)
        if os.path.isfile(path):
            text = open(path, encoding="utf-8").read()
            if text.startswith("---"):
                import yaml

                end = text.find("\n---", 3)
                try:
                    front = yaml.safe_load(text[3:end]) if end > 0 else None
                except yaml.YAMLError as exc:
                    raise TaskhubError(f"{path}: the YAML front matter does not parse ({str(exc).splitlines()[0]})") from None
                if isinstance(front, dict) and isinstance(front.get("labels"), list):
                    return [str(name) for name in front["labels"]]
    return None


# -------------------------------------------------------------------- metrics
