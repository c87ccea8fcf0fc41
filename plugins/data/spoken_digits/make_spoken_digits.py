"""Generate the bundled speech-recognition set: spoken digit strings, synthesised by espeak-ng.

Needs the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``) and the
taskhub venv (numpy, soundfile, torchaudio). Run from anywhere::

    python plugins/data/spoken_digits/make_spoken_digits.py

Each clip says two to five digits as words ("four seven two"), in a random espeak-ng voice
(accent x voice variant), speed, pitch and word gap, with a little silence around it, at a
random level and with coloured noise at 15-35 dB SNR. Saved as 16 kHz mono FLAC with 8-bit
samples (the quantisation noise sits below the added noise; it keeps the files small).
Deterministic for a given espeak-ng version: re-running rewrites the same files.
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
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3", "croak"]
SPLITS = {"train": 540, "validation": 60, "test": 60}


def speak(text: str, rng: random.Random) -> np.ndarray:
    """One espeak-ng utterance with random voice settings, trimmed, at RATE."""
    voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
    cmd = ["espeak-ng", "-v", voice, "-s", str(rng.randint(130, 210)), "-p", str(rng.randint(15, 85)),
           "-g", str(rng.randint(0, 8)), "-w", "/dev/stdout", text]  # fmt: skip
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = F.resample(torch.from_numpy(audio), rate, RATE).numpy()
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    return audio[loud[0] : loud[-1] + 1]


def noisy(speech: np.ndarray, rng: random.Random, np_rng: np.random.Generator) -> np.ndarray:
    """Speech with 0.05-0.25 s of silence each side, random level, coloured noise at 15-35 dB SNR."""
    before, after = (int(RATE * rng.uniform(0.05, 0.25)) for _ in range(2))
    out = np.concatenate([np.zeros(before, np.float32), speech, np.zeros(after, np.float32)])
    out *= rng.uniform(0.2, 0.7) / np.abs(out).max()
    white = np_rng.standard_normal(len(out)).astype(np.float32)
    colour = rng.uniform(0.0, 0.95)  # one-pole low-pass: white (0) to rumbling (0.95)
    noise = F.lfilter(torch.from_numpy(white)[None], torch.tensor([1.0, -colour]), torch.tensor([1.0 - colour, 0.0]), clamp=False)[0].numpy()
    speech_rms = np.sqrt(np.mean(out[before : before + len(speech)] ** 2))
    noise *= speech_rms / (np.sqrt(np.mean(noise**2)) * 10 ** (rng.uniform(15, 35) / 20))
    return np.clip(out + noise, -1, 1)


def main(seed: int = 0) -> None:
    rng, np_rng = random.Random(seed), np.random.default_rng(seed)
    clips = HERE / "clips"
    shutil.rmtree(clips, ignore_errors=True)
    clips.mkdir()
    n = 0
    for split, count in SPLITS.items():
        with open(HERE / f"{split}.jsonl", "w") as out:
            for _ in range(count):
                text = " ".join(rng.choice(DIGITS) for _ in range(rng.randint(2, 5)))
                path = f"clips/{n:04d}.flac"
                sf.write(HERE / path, noisy(speak(text, rng), rng, np_rng), RATE, format="FLAC", subtype="PCM_S8")
                out.write(json.dumps({"audio": path, "text": text}) + "\n")
                n += 1
        print(split, count)


if __name__ == "__main__":
    main()
