"""``mode=push``: upload a model folder (a run's ``model/``: weights or adapter, processor,
model card) to the Hugging Face Hub as it is, into a private repository by default."""

from __future__ import annotations

import os
from typing import Any

from taskhub.config import RunConfig
from taskhub.errors import TaskhubError

#: Never uploaded: taskhub's own bookkeeping and half-written temporary files.
IGNORED = (".*", "*.tmp")


def upload_files(folder: str) -> list[str]:
    """The files of ``folder`` an upload sends (relative paths, sorted)."""
    from fnmatch import fnmatch

    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not any(fnmatch(d, p) for p in IGNORED)]
        files += [os.path.relpath(os.path.join(root, n), folder) for n in names if not any(fnmatch(n, p) for p in IGNORED)]
    return sorted(files)


def push(run: RunConfig) -> dict[str, Any]:
    from huggingface_hub import HfApi, constants

    folder, repo_id = run.model.name_or_path, run.push.repo_id
    if not repo_id or repo_id.count("/") != 1:
        raise TaskhubError(f"mode=push needs push.repo_id=<org or user>/<name> (got {repo_id})")
    if not folder or not os.path.isdir(folder):
        raise TaskhubError(f"mode=push uploads a model folder: model.name_or_path={folder} is not one (e.g. <run dir>/model)")
    if not os.path.isfile(os.path.join(folder, "README.md")):
        raise TaskhubError(f"{folder}: no model card (README.md); push a model folder taskhub trained")
    if constants.HF_HUB_OFFLINE:
        raise TaskhubError(f"mode=push: the run is offline (HF_HUB_OFFLINE=1); unset it to upload {folder} to {repo_id}")
    api = HfApi()
    url = api.create_repo(repo_id, private=run.push.private, exist_ok=True)
    api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message=run.push.commit_message, ignore_patterns=list(IGNORED))
    print(f"taskhub: pushed {len(upload_files(folder))} files of {folder} to {url}", flush=True)
    return {"mode": "push", "repo": str(url), "files": upload_files(folder)}
