"""Regenerate tests/data/qa_v4_reference.json: transformers 4.57.6's question-answering
pipeline (removed in 5.x) on the seeded tiny model of tests/qa_models.py.

    python3 -m venv /tmp/tf4 && /tmp/tf4/bin/pip install transformers==4.57.6 torch omegaconf
    HF_HUB_OFFLINE=1 PYTHONPATH=. /tmp/tf4/bin/python tests/data/make_qa_reference.py
"""

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from qa_models import random_qa_model  # noqa: E402
from transformers import pipeline  # noqa: E402

cases = json.loads((HERE / "qa_cases.json").read_text())
with tempfile.TemporaryDirectory() as model_dir:
    random_qa_model(model_dir)
    qa = pipeline("question-answering", model=model_dir)
    reference = []
    for settings in cases["settings"]:
        rows = []
        for example in cases["examples"]:
            answers = qa(question=example["question"], context=example["context"], **settings)
            rows.append(answers if isinstance(answers, list) else [answers])
        reference.append({"settings": settings, "answers": rows})
(HERE / "qa_v4_reference.json").write_text(json.dumps(reference, indent=1) + "\n")
