"""Reading media inputs shared by tasks of one modality (images; audio: :mod:`taskhub.audio`),
and the wording of a library's error on one input."""

from __future__ import annotations

import io
import math
import os
from typing import Any

from taskhub.dataroot import checked_path
from taskhub.errors import RowError


def library_message(exc: BaseException) -> str:
    """A library exception in one line: its type (the message alone may not say what went
    wrong, e.g. "negative dimensions are not allowed") and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def load_image(value: Any, index: int, draft: tuple[int, int] | None = None):
    """A file path, encoded image bytes, a ``{bytes, path}`` struct (the ``datasets`` Image
    feature), PIL image or HxW(xC) array -> upright RGB PIL image; RowError if unreadable.

    Images are turned by their EXIF orientation, as ``transformers.image_utils.load_image``
    does: cameras store a portrait photo sideways and tag it (orientation 6), and the
    model must see it the way it is displayed. ``draft`` (width, height): see
    :func:`decode_image`."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return upright_rgb(value)
    if isinstance(value, dict) and value.keys() <= {"bytes", "path"}:  # datasets' Image feature, undecoded
        value = stored_file(value, index, "image")
    if isinstance(value, (str, os.PathLike, bytes, bytearray)):
        return decode_image(value, index, draft)
    if hasattr(value, "__array__"):
        import numpy as np

        image = Image.fromarray(np.asarray(value))
        return image if image.mode == "RGB" else image.convert("RGB")
    raise RowError(index, f"image must be a file path, image bytes, PIL image or array, got {type(value).__name__}")


def stored_file(value: dict, index: int, what: str) -> str | bytes:
    """A ``{bytes, path}`` struct (``datasets``' Image / Audio features, Parquet written by
    ``datasets``) -> its bytes, or its file when it holds none."""
    if value.get("bytes") is not None:
        return value["bytes"]
    if value.get("path"):
        return value["path"]
    raise RowError(index, f"missing {what}: the {{bytes, path}} value holds neither")


def decode_image(value: str | os.PathLike | bytes | bytearray, index: int, draft: tuple[int, int] | None = None):
    """An image file or encoded bytes -> upright RGB PIL image. Whatever PIL raises on
    the data (not an image, truncated, a decompression bomb) is the row's error, naming the file.

    With ``draft`` (the upright (width, height) an image may shrink to, :func:`draft_size`),
    a JPEG is decoded at 1/2, 1/4 or 1/8 scale where both sides stay at least that large:
    libjpeg then skips most of the inverse DCT, and the processor resizes fewer pixels."""
    from PIL import Image

    binary = isinstance(value, (bytes, bytearray))
    what = f"image bytes ({len(value)} bytes)" if binary else f"image {os.fspath(value)}"
    try:
        with Image.open(io.BytesIO(value) if binary else checked_path(value)) as opened:
            if draft is not None and opened.format == "JPEG":
                width, height = draft
                if opened.getexif().get(ORIENTATION, 1) in TURNED:  # stored sideways: its stored width is shown as height
                    width, height = height, width
                opened.draft(opened.mode, (width, height))
            image = upright_rgb(opened)
            return opened.copy() if image is opened else image  # decoded: the file closes here
    except FileNotFoundError:
        raise RowError(index, f"image file not found: {os.fspath(value)}") from None
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
        raise RowError(index, f"cannot read {what}: {library_message(exc)}") from None


def upright_rgb(image):
    """The image rotated / mirrored by its EXIF orientation, in RGB (as transformers' load_image)."""
    from PIL import ImageOps

    if image.getexif().get(ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else image.convert("RGB")


#: The EXIF tag of how the stored pixels are turned for display (1: as stored).
ORIENTATION = 0x0112
#: Orientations that turn the image by 90 or 270 degrees (width and height swap).
TURNED = frozenset({5, 6, 7, 8})


def draft_size(processor) -> tuple[int, int] | None:
    """The smallest (width, height) an image may be decoded at for ``processor`` (an image
    processor, or a processor holding one) to see the same picture: it resizes every image
    down to at most this. None where its resize is not one of the known kinds (no draft).

    ``height``/``width``: resized to exactly that. ``shortest_edge``: the short side to
    that (ConvNext-style processors first to ``shortest_edge / crop_pct``, then crop), the
    long side at most what the short one gives, so both sides at least the edge suffice;
    ``longest_edge`` alone: both sides at least the edge."""
    processor = getattr(processor, "image_processor", None) or processor
    size = getattr(processor, "size", None)
    if not getattr(processor, "do_resize", False) or size is None or not hasattr(size, "get"):
        return None
    if size.get("height") and size.get("width"):
        return int(size["width"]), int(size["height"])
    edge = size.get("shortest_edge") or size.get("longest_edge")
    if not edge:
        return None
    crop_pct = getattr(processor, "crop_pct", None)
    if size.get("shortest_edge") and crop_pct and 0 < crop_pct < 1:
        edge = math.ceil(edge / crop_pct)
    return int(edge), int(edge)


class DraftDecoding:
    """Image decoding for tasks whose model sees an image only through the processor's
    resize (a mixin before the Task base): JPEGs are decoded at reduced scale down to
    :func:`draft_size` (:func:`decode_image`). Not for tasks that answer in the original
    image's pixels (boxes, masks): a drafted image is smaller."""

    def load_images(self, values: list) -> list:
        """The batch's image values as upright RGB PIL images, JPEGs drafted."""
        draft = draft_size(self.processor)
        return [load_image(value, i, draft) for i, value in enumerate(values)]


class PixelBatching:
    """Length batching for image tasks (a mixin before the Task base): a feature costs
    its pixels, and on the CPU a batch holds at most :attr:`cpu_max_pixels` of them."""

    #: On the CPU, batches of at most this many pixels (8 images at 224x224): a ResNet-18
    #: ran 10-15% faster per image in batches of 8 than of 32, its activations staying in
    #: cache. Small images (the 32x32 demo) still go 32 at a time.
    cpu_max_pixels = 8 * 224 * 224

    def feature_length(self, features, index: int) -> int:
        pixels = features["pixel_values"][index]
        return pixels.shape[-2] * pixels.shape[-1]

    def default_max_tokens(self) -> int | None:
        return self.cpu_max_pixels if self.model.device.type == "cpu" else super().default_max_tokens()
