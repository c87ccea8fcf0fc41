"""Generate the bundled keyword-spotting set: ten spoken command words, synthesised by espeak-ng.

Needs the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``) and the
taskhub venv (numpy, soundfile, torchaudio). Run from anywhere::

    python plugins/data/keywords/make_keywords.py

Each clip is one word from Speech Commands' ten commands, spoken by a random espeak-ng
voice (accent x voice variant) at a random speed and pitch, placed at a
random offset in a 1-second window, scaled to a random level and mixed with coloured
noise at 15-35 dB SNR. Saved as 16 kHz mono FLAC with 8-bit samples (the quantisation
noise sits far below the added noise; it keeps the files small). Deterministic for a
given espeak-ng version: re-running with the same seed rewrites the same files.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as F

HERE = Path(__file__).resolve().parent
RATE = 16_000
WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3", "croak"]
SPLITS = {"train": 100, "validation": 10, "test": 20}  # clips per word


def speak(text: str, rng: random.Random) -> np.ndarray:
    """One espeak-ng utterance with random voice settings, trimmed, at RATE."""
    voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
    cmd = ["espeak-ng", "-v", voice, "-s", str(rng.randint(120, 220)), "-p", str(rng.randint(15, 85)),
           "-w", "/dev/stdout", text]  # fmt: skip
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = F.resample(torch.from_numpy(audio), rate, RATE).numpy()
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return audio[loud[0] : loud[-1] + 1]


def noisy(speech: np.ndarray, length: int, rng: random.Random, np_rng: np.random.Generator) -> np.ndarray:
    """Speech at a random offset in ``length`` samples, random level, coloured noise at 15-35 dB SNR."""
    speech = speech[:length]
    out = np.zeros(length, dtype=np.float32)
    start = rng.randint(0, length - len(speech))
    out[start : start + len(speech)] = speech
    out *= rng.uniform(0.2, 0.7) / np.abs(out).max()
    white = np_rng.standard_normal(length).astype(np.float32)
    colour = rng.uniform(0.0, 0.95)  # one-pole low-pass: white (0) to rumbling (0.95)
    noise = F.lfilter(torch.from_numpy(white)[None], torch.tensor([1.0, -colour]), torch.tensor([1.0 - colour, 0.0]), clamp=False)[0].numpy()
    snr_db = rng.uniform(15, 35)
    speech_rms = np.sqrt(np.mean(speech**2) * len(speech) / length)
    noise *= speech_rms / (np.sqrt(np.mean(noise**2)) * 10 ** (snr_db / 20))
    return np.clip(out + noise, -1, 1)


def main(seed: int = 0) -> None:
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    clips = HERE / "clips"
    shutil.rmtree(clips, ignore_errors=True)
    clips.mkdir()
    n = 0
    for split, per_word in SPLITS.items():
        rows = []
        for _ in range(per_word):
            for word in WORDS:
                audio = noisy(speak(word, rng), RATE, rng, np_rng)
                path = f"clips/{n:04d}.flac"
                sf.write(HERE / path, audio, RATE, format="FLAC", subtype="PCM_S8")
                rows.append({"audio": path, "label": word})
                n += 1
        rng.shuffle(rows)
        with open(HERE / f"{split}.jsonl", "w") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
        print(split, len(rows))


if __name__ == "__main__":
    main()
