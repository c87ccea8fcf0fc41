"""image_classification: one label per image (a file path, PIL image or array)."""

from __future__ import annotations

from dataclasses import dataclass

from taskhub import TaskSpec, hookimpl
from taskhub.classification import ClassificationConfig, ClassificationTask
from taskhub.media import DraftDecoding, PixelBatching


@dataclass
class ImageClassificationConfig(ClassificationConfig):
    name: str = "image_classification"


class ImageClassification(DraftDecoding, PixelBatching, ClassificationTask):
    """Classify images into labels (any PIL-readable file, converted to RGB)."""

    name = "image_classification"
    config_cls = ImageClassificationConfig
    modality = "image"
    auto_model = "AutoModelForImageClassification"
    processor_class = "AutoImageProcessor"
    input_columns = ("image",)
    path_columns = ("image",)
    # Decoded images are large (3x224x224 floats: 0.6 MB each): few batches at a time.
    chunk_batches = 4
    # Decoding and resizing run beside the forward pass (on an accelerator).
    overlap_preprocessing = True
    demo_data = "pkg://taskhub_plugins/data/digits"
    demo_description = "Upload an image to see which of the model's labels fit it best, and how well."
    # With no model named, a small ResNet is trained from scratch on the digits.
    default_model_config = {
        "model_type": "resnet",
        "num_channels": 3,
        "embedding_size": 16,
        "hidden_sizes": [16, 32],
        "depths": [1, 1],
        "layer_type": "basic",
        "downsample_in_first_stage": False,
    }
    default_processor_config = {
        "processor_class": "ViTImageProcessor",
        "size": {"height": 32, "width": 32},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    training_defaults = {"num_train_epochs": 8, "learning_rate": 2e-3, "per_device_train_batch_size": 32}

    def preprocess(self, batch):
        # No return_tensors: the rows' arrays as the processor made them, stacked once by the collator.
        return {"pixel_values": self.processor(self.load_images(batch["image"]))["pixel_values"]}


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(ImageClassification.name, ImageClassification, ImageClassificationConfig)]
