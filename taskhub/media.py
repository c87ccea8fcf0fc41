"""Reading media inputs shared by tasks of one modality (images now; audio later)."""

from __future__ import annotations

from typing import Any

from taskhub.errors import RowError


def load_image(value: Any, index: int):
    """A file path, PIL image or HxW(xC) array -> RGB PIL image; RowError if unreadable."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, str):
        try:
            with Image.open(value) as opened:
                return opened.convert("RGB")  # decodes into a new image: one copy, file closed
        except FileNotFoundError:
            raise RowError(index, f"image file not found: {value}") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise RowError(index, f"cannot read image {value}: {exc}") from None
    elif hasattr(value, "__array__"):
        import numpy as np

        image = Image.fromarray(np.asarray(value))
    else:
        raise RowError(index, f"image must be a file path, PIL image or array, got {type(value).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")
