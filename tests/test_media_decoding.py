"""The fast media paths: JPEGs decoded at reduced scale down to the processor's resize target
(``taskhub.media.draft_size`` / ``DraftDecoding``), and log-mel / waveform features
extracted with one call per run of equal-length clips (``taskhub.audio.extract_batch``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import taskhub
from taskhub.audio import extract, extract_batch
from taskhub.media import ORIENTATION, draft_size, load_image

#: Largest change drafting may make to a pixel_values element (normalised units, mean/std
#: 0.5 here: 1.0 is a quarter of the range) of a photo-like JPEG: libjpeg's scaled inverse
#: DCT is a box-like downscale where the processor's resize is bicubic, so sharp edges
#: differ by up to ~0.3 and smooth areas by ~0.01. Measured on the benchmark's photos
#: (row 4c): max 0.31, mean 0.0009, the model's labels all equal.
DRAFT_MAX_ABS = 0.35
DRAFT_MEAN_ABS = 0.01


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: a smooth colour field, a sharp-edged square, sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    field = np.stack([np.sin(3 * x + c) * np.cos(2 * y - c) for c in (0.0, 1.0, 2.0)], axis=-1) * 80 + 128
    field[height // 4 : height // 2, width // 4 : width // 2] = (240, 30, 30)
    field += rng.normal(0, 6, field.shape)
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny ResNet classifier with a ConvNext-style processor (shortest edge 64 / 0.875, crop 64)."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    path = tmp_path_factory.mktemp("resnet")
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3,
                          id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    ResNetForImageClassification(config).save_pretrained(path)
    ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(path)
    return taskhub.load_task("image_classification", model=str(path), device="cpu")


def pixels(task, value):
    return np.asarray(task.preprocess({"image": [value]})["pixel_values"][0])


def reference(task, image):
    """pixel_values of the fully decoded image (no draft), straight from the processor."""
    return task.processor(image, return_tensors="np")["pixel_values"][0]


def test_draft_size_is_the_smallest_size_the_processor_resizes_down_from(classifier):
    from transformers import ViTImageProcessor

    assert draft_size(classifier.processor) == (74, 74)  # ceil(64 / 0.875)
    assert draft_size(ViTImageProcessor(size={"height": 32, "width": 48})) == (48, 32)
    assert draft_size(ViTImageProcessor(size={"height": 32, "width": 48}, do_resize=False)) is None


def test_a_drafted_jpeg_stays_within_tolerance_of_the_full_decode(classifier, tmp_path):
    path = tmp_path / "big.jpg"
    photo(640, 480).save(path, quality=90)
    with Image.open(path) as full:
        expected = reference(classifier, full.convert("RGB"))
    decoded = load_image(str(path), 0, draft_size(classifier.processor))
    assert decoded.size == (160, 120)  # 1/4 scale: both sides stay >= 74 (1/8 would give 80x60)
    got = pixels(classifier, str(path))
    assert got.shape == expected.shape
    difference = np.abs(got - expected)
    assert difference.max() <= DRAFT_MAX_ABS and difference.mean() <= DRAFT_MEAN_ABS
    assert difference.max() > 0  # it was drafted: the fully decoded pixels are not what the task used
    # bytes and datasets' {bytes, path} struct take the same path
    np.testing.assert_array_equal(pixels(classifier, path.read_bytes()), got)
    np.testing.assert_array_equal(pixels(classifier, {"bytes": None, "path": str(path)}), got)


def test_images_at_or_below_the_target_and_pngs_are_not_drafted(classifier, tmp_path):
    small, png = tmp_path / "small.jpg", tmp_path / "big.png"
    photo(100, 80).save(small, quality=90)  # 1/2 scale would give 50x40 < 74: full decode
    photo(640, 480).save(png)
    for path in (small, png):
        with Image.open(path) as full:
            np.testing.assert_array_equal(pixels(classifier, str(path)), reference(classifier, full.convert("RGB")))


def test_an_exif_turned_jpeg_is_upright_when_drafted(classifier, tmp_path):
    stored = photo(640, 320)  # wide as stored; shown tall
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # shown turned 90 degrees clockwise
    path = tmp_path / "portrait.jpg"
    stored.save(path, exif=exif, quality=90)
    draft = draft_size(classifier.processor)
    image = load_image(str(path), 0, draft)
    # Turned: the stored 640x320 is shown 320x640 and drafted by 4 (the short side 80 >= 74).
    assert image.size == (80, 160)
    with Image.open(path) as full:
        upright = full.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert upright.size == (320, 640)
    difference = np.abs(pixels(classifier, str(path)) - reference(classifier, upright))
    assert difference.max() <= DRAFT_MAX_ABS and difference.mean() <= DRAFT_MEAN_ABS
    # Not turned, the same pixels would differ far beyond the tolerance.
    assert np.abs(pixels(classifier, str(path)) - reference(classifier, full_decode_as_stored(path))).mean() > 10 * DRAFT_MEAN_ABS


def full_decode_as_stored(path):
    with Image.open(path) as image:
        return image.convert("RGB")


def test_predictions_on_drafted_jpegs_match_the_full_decode(classifier, tmp_path):
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"p{i}.jpg")
        photo(320 + 64 * i, 480, seed=i).save(paths[-1], quality=90)
    predicted = classifier.predict([{"image": str(p)} for p in paths])
    import torch

    with torch.inference_mode():
        logits = classifier.model(pixel_values=torch.from_numpy(np.stack([reference(classifier, full_decode_as_stored(p)) for p in paths]))).logits
    assert [p["label"] for p in predicted] == [classifier.model.config.id2label[int(i)] for i in logits.argmax(-1)]


# ------------------------------------------------------------------------ audio
def extractors():
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor, WhisperFeatureExtractor

    return {
        "log-mel (SeamlessM4T, audio_classification's default)": SeamlessM4TFeatureExtractor(sampling_rate=16000),
        "waveform (wav2vec2, normalised, mask)": Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True),
        "log-mel (Whisper)": WhisperFeatureExtractor(),
    }


@pytest.mark.parametrize("name", list(extractors()))
def test_batched_feature_extraction_equals_one_clip_at_a_time(name):
    extractor = extractors()[name]
    rng = np.random.default_rng(1)
    # equal-length runs (batched) mixed with lone lengths (called alone), in no order
    lengths = [16000, 8000, 16000, 12345, 16000, 8000, 4000]
    waveforms = [(rng.normal(0, 0.1, n) * np.hanning(n)).astype(np.float32) for n in lengths]
    batched = extract_batch(extractor, waveforms)
    assert len(batched) == len(waveforms)
    for waveform, row in zip(waveforms, batched, strict=True):
        alone = extract(extractor, waveform)
        assert row.keys() == alone.keys()
        for key in alone:
            assert row[key].shape == alone[key].shape
            np.testing.assert_allclose(row[key], alone[key], rtol=0, atol=1e-6)


def test_audio_classification_preprocess_is_per_clip_extraction(tmp_path):
    from audio_models import classifier as audio_classifier

    task = taskhub.load_task("audio_classification", model=str(audio_classifier(tmp_path / "bert", "wav2vec2-bert")), device="cpu")
    rng = np.random.default_rng(2)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 16000, 9000, 16000)]
    features = task.preprocess({"audio": clips})
    for i, clip in enumerate(clips):
        alone = extract(task.feature_extractor, clip)
        assert features.keys() >= alone.keys()
        for key in alone:
            np.testing.assert_allclose(features[key][i], alone[key], rtol=0, atol=1e-6)
