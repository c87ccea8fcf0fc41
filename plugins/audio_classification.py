"""audio_classification: one label per recording (keyword spotting, sound events, speakers)."""

from __future__ import annotations

from dataclasses import dataclass

from taskhub import TaskSpec, hookimpl
from taskhub.audio import SMALL_DATA_WAV2VEC2, AudioTask, extract_batch, forward_rows
from taskhub.classification import ClassificationConfig, ClassificationTask


@dataclass
class AudioClassificationConfig(ClassificationConfig):
    name: str = "audio_classification"


class AudioClassification(AudioTask, ClassificationTask):
    """Classify recordings into labels; any sample rate, mono or multi-channel."""

    name = "audio_classification"
    config_cls = AudioClassificationConfig
    auto_model = "AutoModelForAudioClassification"
    processor_class = "AutoFeatureExtractor"
    demo_data = "pkg://taskhub_plugins/data/keywords"
    demo_description = "Upload or record a sound to see which of the model's labels fit it best, and how well."
    # With no model named, a small wav2vec2-BERT (a conformer over log-mel features:
    # attention plus depthwise convolutions, which learns from few examples) is trained
    # from scratch.
    default_model_config = {
        **SMALL_DATA_WAV2VEC2,
        "model_type": "wav2vec2-bert",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "output_hidden_size": 128,
        "classifier_proj_size": 128,
        "conv_depthwise_kernel_size": 15,
    }
    # 80 log-mel bins every 10 ms, two frames stacked (160 values per 20 ms), normalised per recording.
    default_processor_config = {"processor_class": "SeamlessM4TFeatureExtractor", "sampling_rate": 16000}
    training_defaults = {
        "num_train_epochs": 10,
        "learning_rate": 2e-3,
        "warmup_steps": 0.1,
        "weight_decay": 0.01,
        "per_device_train_batch_size": 16,
    }

    def preprocess(self, batch):
        rows = extract_batch(self.feature_extractor, self.waveforms(batch))
        return {key: [row[key] for row in rows] for key in rows[0]}

    def _forward(self, inputs):
        from types import SimpleNamespace

        import torch

        logits = forward_rows(self.model, inputs, lambda model, part, lengths: list(model(**part).logits))
        return SimpleNamespace(logits=torch.stack(logits))


@hookimpl
def taskhub_register_tasks():
    return [TaskSpec(AudioClassification.name, AudioClassification, AudioClassificationConfig)]
