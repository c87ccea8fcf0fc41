"""The audio input path shared by every audio task: reading, mono mix-down, resampling,
feature extraction (batched where no padding is needed), padding, and running models that cannot take padded batches.

An ``audio`` value is a file path (WAV, FLAC, OGG, and MP3 where the installed libsndfile
reads it; decoded by soundfile), a ``{bytes, path}`` struct (the ``datasets`` Audio feature,
never decoded by ``datasets``), or from the Python API a ``{"array": ..., "sampling_rate":
...}`` dict (``"raw"`` works too, as in transformers' pipelines) or a bare array taken to be
at the model's rate. Whatever comes in leaves as a mono float32 waveform at the feature
extractor's rate: channels are averaged, integer PCM is scaled to [-1, 1], other rates are
resampled with ``torchaudio.functional.resample`` (what the pipelines use, so predictions
match theirs). A bad value raises :class:`~taskhub.errors.RowError` naming the file; the core
adds the data file and row.

:class:`AudioTask` is the mixin the audio task plugins build on. This module imports numpy,
torch and soundfile inside functions only: plugins import it at discovery time.
"""

from __future__ import annotations

import os
from typing import Any

from taskhub.dataroot import checked_path
from taskhub.errors import RowError

#: Collated-batch key (inference only) of each row's unpadded length along the time axis.
LENGTHS = "_lengths"
#: Collated-batch key (inference only) of the time axis of the main input.
TIME_AXIS = "_time_axis"
#: Most features one model call takes at inference (bounds memory when long recordings
#: are split into many chunks).
FORWARD_BATCH = 16
#: Default ``predict.max_tokens`` on the CPU for models that read raw waveforms, in seconds
#: of padded audio per batch (see :meth:`AudioTask.default_max_tokens`).
CPU_WAVEFORM_SECONDS = 2
#: Settings of the audio tasks' from-scratch demo models (small data, a few minutes of
#: CPU): no masking or dropout, which only slow such short runs down.
SMALL_DATA_WAV2VEC2 = {
    "mask_time_prob": 0.0,
    "hidden_dropout": 0.0,
    "activation_dropout": 0.0,
    "attention_dropout": 0.0,
    "feat_proj_dropout": 0.0,
    "layerdrop": 0.0,
}


# ------------------------------------------------------------------------ reading
def load_audio(value: Any, index: int, sampling_rate: int):
    """One ``audio`` value -> 1-D float32 numpy waveform at ``sampling_rate``."""
    if isinstance(value, dict) and "array" not in value and "raw" not in value and value.keys() <= {"bytes", "path"}:
        from taskhub.media import stored_file

        value = stored_file(value, index, "audio")  # datasets' Audio feature, undecoded
    if isinstance(value, (bytes, bytearray)):
        array, rate = read_file(value, index)
    elif isinstance(value, (str, os.PathLike)):
        array, rate = read_file(os.fspath(value), index)
    elif isinstance(value, dict):
        array = value.get("array", value.get("raw"))
        rate = value.get("sampling_rate")
        if array is None or rate is None:
            keys = ", ".join(map(str, value)) or "none"
            raise RowError(index, f"an audio dict needs 'array' (or 'raw') and 'sampling_rate' keys (got: {keys})")
        array = to_mono(as_float(array, index), index)
    elif hasattr(value, "__array__"):
        array, rate = to_mono(as_float(value, index), index), sampling_rate
    elif value is None:
        raise RowError(index, "missing audio")
    else:
        raise RowError(index, f"audio must be a file path, an {{array, sampling_rate}} dict or an array, got {type(value).__name__}")
    if array.size == 0:
        raise RowError(index, "the audio array has no samples")
    check_finite(array, index, audio_name(value) if isinstance(value, (str, os.PathLike, bytes, bytearray)) else "the audio array")
    return resample(array, int(rate), sampling_rate)


def check_finite(array, index: int, what: str) -> None:
    """Refuse NaN or infinite samples (a float file can hold them): the model would output
    NaN scores, which are not JSON, and training on them turns every weight into NaN."""
    import numpy as np

    if not np.isfinite(array).all():
        raise RowError(index, f"{what} has NaN or infinite samples")


def audio_name(value: str | os.PathLike | bytes | bytearray) -> str:
    """How messages name an encoded audio input: its file, or its size for bytes."""
    return f"audio bytes ({len(value)} bytes)" if isinstance(value, (bytes, bytearray)) else f"audio file {os.fspath(value)}"


def read_file(path: str | bytes, index: int):
    """Decode an audio file (or its bytes) with soundfile -> (mono float32 array, sampling rate)."""
    import io

    import soundfile as sf

    binary = isinstance(path, (bytes, bytearray))
    what = audio_name(path)
    if not binary and not os.path.exists(path):
        raise RowError(index, f"audio file not found: {path}")
    if (len(path) if binary else os.path.getsize(path) if os.path.isfile(path) else 1) == 0:
        raise RowError(index, f"{what} is empty (0 bytes)")
    try:
        # float32 output scales integer PCM of any width to [-1, 1]; always_2d: (frames, channels).
        array, rate = sf.read(io.BytesIO(path) if binary else checked_path(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise RowError(index, f"cannot read {what}: {exc.error_string.rstrip('.')}") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise RowError(index, f"cannot read {what}: {exc}") from None
    if array.shape[0] == 0:
        raise RowError(index, f"{what} is empty (no samples)")
    return array.mean(axis=1, dtype="float32") if array.shape[1] > 1 else array[:, 0], rate


def as_float(array, index: int):
    """An array-like -> float32 numpy array; integer PCM scaled to [-1, 1]."""
    import numpy as np

    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype.kind == "i":
        return (array / float(2 ** (8 * array.dtype.itemsize - 1))).astype(np.float32)
    if array.dtype.kind == "u":  # unsigned PCM (8-bit WAV): silence is the middle value
        half = float(2 ** (8 * array.dtype.itemsize - 1))
        return ((array - half) / half).astype(np.float32)
    if array.dtype.kind != "f":
        raise RowError(index, f"audio array must hold numbers, got dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def to_mono(array, index: int):
    """1-D as is; 2-D (channels, samples) or (samples, channels) averaged over channels.

    The channel axis is the short one (at most 8 channels); a 2-D array with no such axis
    is refused rather than guessed at.
    """
    if array.ndim == 1:
        return array
    if array.ndim == 2:
        rows, cols = array.shape
        if rows <= 8 and cols > rows:
            return array.mean(axis=0, dtype="float32")
        if cols <= 8 and rows > cols:
            return array.mean(axis=1, dtype="float32")
    raise RowError(index, f"audio array of shape {tuple(array.shape)} is not mono (samples,) or (channels, samples) with at most 8 channels")


def resample(array, rate: int, target: int):
    if rate == target:
        return array
    import torch
    import torchaudio.functional as F

    return F.resample(torch.from_numpy(array), rate, target).numpy()


# --------------------------------------------------------------------- features
def feature_extractor_of(processor):
    """The feature extractor inside a processor (Wav2Vec2Processor, WhisperProcessor), or itself."""
    return getattr(processor, "feature_extractor", None) or processor


def extract(feature_extractor, waveform, **kwargs) -> dict[str, Any]:
    """Features of one waveform, without the batch axis (numpy)."""
    out = feature_extractor(waveform, sampling_rate=feature_extractor.sampling_rate, return_tensors="np", **kwargs)
    return {k: v[0] for k, v in out.items()}


def extract_batch(feature_extractor, waveforms: list, **kwargs) -> list[dict[str, Any]]:
    """Features of each waveform, as :func:`extract` gives them, with one extractor call per
    run of equal-length waveforms instead of one per waveform: a batch of equal lengths
    needs no padding, so each row's features are those of the waveform alone (the 1-s clips
    of a keyword data set make one call per chunk), and the per-call work (argument checks,
    padding, the output's tensors) is paid once. Rows of other lengths are called alone."""
    groups: dict[int, list[int]] = {}
    for i, waveform in enumerate(waveforms):
        groups.setdefault(len(waveform), []).append(i)
    rows: list[dict[str, Any] | None] = [None] * len(waveforms)
    for indices in groups.values():
        if len(indices) == 1:
            rows[indices[0]] = extract(feature_extractor, waveforms[indices[0]], **kwargs)
            continue
        out = feature_extractor([waveforms[i] for i in indices], sampling_rate=feature_extractor.sampling_rate, return_tensors="np", **kwargs)
        for position, i in enumerate(indices):
            rows[i] = {k: v[position] for k, v in out.items()}
    return rows


def main_input_name(feature_extractor) -> str:
    return feature_extractor.model_input_names[0]


def time_axis(arrays: list, masks: list | None) -> int:
    """The axis of the rows' features that runs along time: the one whose size varies
    between rows; for rows of one shape, the one the attention mask covers (the last for
    (bins, frames) features such as Whisper's), else the first."""
    ndim = arrays[0].ndim
    for axis in range(ndim):
        if len({a.shape[axis] for a in arrays}) > 1:
            return axis
    if masks is not None and ndim > 1 and arrays[0].shape[0] != masks[0].shape[0]:
        return ndim - 1
    return 0


class AudioCollator:
    """Pads per-row features into a batch along their time axis, with the rows' attention
    masks (padded with 0) where the feature extractor made them. ``labels`` that are id
    sequences (transcripts) are padded with -100, which the loss ignores. With ``lengths``
    (inference), :data:`LENGTHS` and :data:`TIME_AXIS` tell :func:`forward_rows` each row's
    length before padding and where to cut."""

    def __init__(self, feature_extractor, lengths: bool = False):
        self.feature_extractor = feature_extractor
        self.lengths = lengths

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import numpy as np
        import torch

        name = main_input_name(self.feature_extractor)
        arrays = [np.asarray(row[name], dtype=np.float32) for row in rows]
        masks = [np.asarray(row["attention_mask"], dtype=np.int64) for row in rows] if "attention_mask" in rows[0] else None
        axis = time_axis(arrays, masks)
        sizes = [a.shape[axis] for a in arrays]
        shape = list(arrays[0].shape)
        shape[axis] = max(sizes)
        padding = float(getattr(self.feature_extractor, "padding_value", 0.0) or 0.0)
        values = np.full((len(arrays), *shape), padding, dtype=np.float32)
        for i, a in enumerate(arrays):
            values[(i, *(slice(0, n) for n in a.shape))] = a
        batch: dict[str, Any] = {name: torch.from_numpy(values)}
        if masks is not None:
            mask = np.zeros((len(masks), max(m.shape[0] for m in masks)), dtype=np.int64)
            for i, m in enumerate(masks):
                mask[i, : m.shape[0]] = m
            batch["attention_mask"] = torch.from_numpy(mask)
        if self.lengths:
            batch[LENGTHS] = torch.tensor(sizes)
            batch[TIME_AXIS] = axis + 1  # in the batch, after the batch axis
        if "labels" in rows[0]:
            labels = [row["labels"] for row in rows]
            if isinstance(labels[0], (list, tuple)):
                width = max(len(ids) for ids in labels)
                labels = [list(ids) + [-100] * (width - len(ids)) for ids in labels]
            batch["labels"] = torch.tensor(labels)
        return batch


def forward_rows(model, inputs: dict[str, Any], call, padded_ok: bool = True) -> list:
    """Run ``call(model, inputs, lengths)`` on a collated inference batch in slices of at
    most :data:`FORWARD_BATCH` rows and return one result per row.

    ``call`` gets the model inputs of a slice and the rows' unpadded lengths, and returns
    one result per row. A padded batch runs as a batch only if it has an attention mask
    (the feature extractor made one: the model masks the padding; models without one,
    such as group-norm wav2vec2, see it) and the caller says its results can be cut back
    to each row (``padded_ok``); otherwise each row runs alone on its unpadded features,
    as a pipeline runs it.
    """
    inputs = dict(inputs)
    lengths, axis = inputs.pop(LENGTHS), inputs.pop(TIME_AXIS)
    name = next(iter(inputs))
    padded = bool((lengths != inputs[name].shape[axis]).any())
    if padded and not (padded_ok and "attention_mask" in inputs):
        results: list = []
        for i, length in enumerate(lengths.tolist()):
            row = {k: v[i : i + 1] for k, v in inputs.items()}
            row[name] = row[name].narrow(axis, 0, length)
            if "attention_mask" in row:
                row["attention_mask"] = row["attention_mask"][:, :length]
            results.extend(call(model, row, lengths[i : i + 1]))
        return results
    results = []
    for start in range(0, len(lengths), FORWARD_BATCH):
        part = {k: v[start : start + FORWARD_BATCH] for k, v in inputs.items()}
        results.extend(call(model, part, lengths[start : start + FORWARD_BATCH]))
    return results


class AudioTask:
    """Mixin of the audio tasks (put it before the task base class): the ``audio`` input
    column, the feature extractor (alone or inside a processor), waveform loading, and
    batches padded along time."""

    modality = "audio"
    input_columns = ("audio",)
    path_columns = ("audio",)
    # Recordings are large once decoded: read and preprocess few batches' worth at a time.
    chunk_batches = 4
    # Decoding, resampling and feature extraction run beside the forward pass.
    overlap_preprocessing = True

    @property
    def feature_extractor(self):
        return feature_extractor_of(self.processor)

    def default_max_tokens(self) -> int | None:
        """On the CPU, models that read raw waveforms (wav2vec2, HuBERT) get batches of at
        most :data:`CPU_WAVEFORM_SECONDS` of padded audio: their convolutional encoder's
        activations then stay in cache, and per clip it ran 1.8x faster than in batches of
        32 on 0.6-3.2 s clips (benchmark row 4d), as fast as one clip at a time. Models
        on log-mel features gain from batching and keep the default."""
        if self.model.device.type == "cpu" and self.feature_extractor.model_input_names[0] == "input_values":
            return CPU_WAVEFORM_SECONDS * self.feature_extractor.sampling_rate
        return super().default_max_tokens()

    def waveforms(self, batch: dict[str, list]) -> list:
        """The batch's ``audio`` values as mono float32 waveforms at the feature extractor's
        rate; a clip shorter than the model takes is its row's error."""
        rate = self.feature_extractor.sampling_rate
        shortest = self.min_samples()
        waveforms = [load_audio(value, i, rate) for i, value in enumerate(batch["audio"])]
        for i, waveform in enumerate(waveforms):
            if waveform.shape[0] < shortest:
                raise RowError(
                    i, f"the audio is too short: {waveform.shape[0]} samples at {rate} Hz; the model needs at least {shortest} ({shortest / rate * 1000:.0f} ms)"
                )
        return waveforms

    def min_samples(self) -> int:
        """The shortest waveform the model takes: a convolutional feature encoder
        (wav2vec2, HuBERT, WavLM: ``conv_kernel`` / ``conv_stride``) needs one receptive
        field for its first frame (400 samples, 25 ms, for wav2vec2-base); a shorter clip
        crashes its forward pass."""
        config = self.model_settings
        kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
        if not kernels or not strides:
            return 1
        samples = 1
        for kernel, stride in zip(reversed(kernels), reversed(strides)):
            samples = (samples - 1) * stride + kernel
        return samples

    def build_collator(self):
        return AudioCollator(self.feature_extractor, lengths=True)

    def build_training_collator(self):
        return AudioCollator(self.feature_extractor)
