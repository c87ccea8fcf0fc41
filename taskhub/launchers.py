"""Sweep jobs that run side by side on one machine (``hydra/launcher=joblib``) share it.

On the CPU, each job gets ``cores // n_jobs`` threads instead of all of them (jobs using
every core each run slower together than one after another). On a machine with several
GPUs, each job process takes a GPU of its own (``CUDA_VISIBLE_DEVICES``), held by a
lock in the sweep dir for as long as the worker process lives. Ray (``num_cpus`` /
``num_gpus`` per job) and SLURM do both themselves.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from omegaconf import OmegaConf

#: The GPU lock this process holds (kept open: closing it would free the GPU).
_gpu_lock: list[int] = []


def share_machine(hydra_cfg: Any) -> None:
    """Set this job's threads and GPU from the launcher's ``n_jobs`` (nothing for one job at a time)."""
    jobs = parallel_jobs(OmegaConf.select(hydra_cfg, "launcher.n_jobs"))
    if jobs <= 1:
        return
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    claim_gpu(str(hydra_cfg.sweep.dir))


def parallel_jobs(n_jobs: int | None) -> int:
    """Jobs running at once for joblib's ``n_jobs`` (negative: counted back from the core count)."""
    if n_jobs is None:
        return 1
    return max(1, (os.cpu_count() or 1) + 1 + n_jobs) if n_jobs < 0 else n_jobs


def claim_gpu(sweep_dir: str) -> None:
    """Make the first GPU no other job process holds this process's only visible one. A
    process that already sees a chosen set (``CUDA_VISIBLE_DEVICES`` set) keeps it; the
    GPUs are counted without initialising CUDA, which would fix the visible set."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return
    gpus = gpu_count()
    if gpus < 2:
        return
    for index in range(gpus):
        fd = os.open(os.path.join(sweep_dir, f".gpu-{index}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _gpu_lock.append(fd)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
        return


def gpu_count() -> int:
    """NVIDIA GPUs on this machine, from the driver's /proc entries (no CUDA call)."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0
