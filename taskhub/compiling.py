"""``model.compile=true``: the inference forward pass through ``torch.compile`` (inductor,
dynamic shapes), optionally with inductor's freezing.

The model's own call is compiled in place (what ``nn.Module.compile`` does), so every
caller (the engine's :meth:`~taskhub.Task.forward`, a task's ``call_model``, the
Trainer's evaluation loop) runs the compiled graph and the model keeps its config,
device and methods. One graph serves every batch shape: batch size and length are
symbolic from the first call, and sizes are reasoned about "size-obliviously", so a
batch of one row (a long text alone under the token budget) does not compile a second
graph specialised to size 1. Compiled artifacts (inductor's FX graph cache,
AOTAutograd's cache) persist under ``$TASKHUB_CACHE/inductor`` (default
``~/.cache/taskhub/inductor``) unless ``TORCHINDUCTOR_CACHE_DIR`` is set: a second run
of the same model skips most of the compile. The calls that compile a graph are timed
apart (:func:`compile_seconds`), so throughput figures can leave them out.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from taskhub.errors import TaskhubError
from taskhub.rundir import user_cache

if TYPE_CHECKING:
    from taskhub.config import ModelConfig
    from taskhub.task import Task

log = logging.getLogger("taskhub")


def check_compile_options(model_config: ModelConfig) -> None:
    """One-line refusals of combinations ``model.compile`` does not take."""
    if model_config.compile_freezing and not model_config.compile:
        raise TaskhubError("model.compile_freezing=true only applies to a compiled model: set model.compile=true too")
    if not model_config.compile:
        return
    if model_config.quantize.value != "none":
        # torch.ao's dynamic int8 Linear modules call packed-weight ops dynamo cannot trace:
        # the graph breaks at every layer (measured: one graph per Linear, slower than eager).
        raise TaskhubError(
            f"model.compile=true with model.quantize={model_config.quantize.value} is not supported: the dynamically "
            "quantized Linear layers break the compiled graph at every layer; use one or the other (model.dtype=bf16 composes)"
        )
    backend = getattr(model_config, "backend", None)
    if backend is not None and backend.value != "torch":
        raise TaskhubError(f"model.compile=true compiles the torch model: it does not apply to model.backend={backend.value}; set one or the other")


def inductor_cache_dir() -> str:
    """Where inductor keeps compiled artifacts across runs: ``TORCHINDUCTOR_CACHE_DIR`` if
    the user set it, else ``$TASKHUB_CACHE/inductor`` (default ``~/.cache/taskhub/inductor``).

    Inductor writes its own default (``/tmp/torchinductor_<user>``) into the variable the
    first time any of its modules asks for the folder (importing its C++ builder does), so
    that value is not taken as the user's choice: it would send a run's artifacts to a
    temporary folder, lost at reboot."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        return chosen
    return str(user_cache("inductor"))


def compile_for_inference(model, model_config: ModelConfig, task: Task | None = None):
    """``model`` with its call compiled (in place; returned for chaining), or as it was for a
    task whose inference stays eager (:attr:`~taskhub.Task.compiles_forward`), with a warning."""
    check_compile_options(model_config)
    if not model_config.compile:
        return model
    if task is not None and not task.compiles_forward:
        log.warning("model.compile=true: task %s runs eager (it generates with model.generate, whose decoding loop is not compiled)", task.name)
        return model
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache_dir()  # before anything of inductor reads it
    if model.device.type == "cpu":
        logging.getLogger("torch.utils.cpp_extension").addFilter(_no_cuda_notice)
        _check_compiler()
    model._compiled_call_impl = CompiledCall(model, freezing=model_config.compile_freezing)
    return model


def _no_cuda_notice(record: logging.LogRecord) -> bool:
    """Drop torch's "No CUDA runtime is found, using CUDA_HOME=..." (logged when inductor
    looks for its C++ toolchain with a CUDA build of torch): a run compiling for the CPU
    needs no CUDA, and the notice reads like a fault."""
    return not record.getMessage().startswith("No CUDA runtime is found")


def _check_compiler() -> None:
    """On the CPU inductor writes C++ and builds it: without a compiler the first batch
    would fail deep inside it."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception:
        raise TaskhubError(
            "model.compile=true needs a C++ compiler on the CPU (inductor builds the compiled graph with it): "
            "install g++ (apt-get install g++), set CXX to one, or run without model.compile"
        ) from None


class CompiledCall:
    """The model's ``_call_impl`` through ``torch.compile``, installed as the module's
    ``_compiled_call_impl`` (where ``nn.Module.compile`` puts it). Counts the graphs it
    compiled and the seconds of the calls that compiled one."""

    def __init__(self, model, freezing: bool):
        import torch
        import torch.fx.experimental._config as fx_config
        from torch._dynamo.utils import counters

        self._fx_config, self._counters = fx_config, counters
        # Freezing folds the weights into the graph as constants (then constant-folded and
        # laid out for the kernels): inference only, which this is.
        options = {"freezing": True} if freezing else None
        self._compiled = torch.compile(model._call_impl, dynamic=True, options=options)
        self.seconds = 0.0
        self.graphs = 0

    def __call__(self, *args: Any, **kwargs: Any):
        before = self._counters["stats"]["unique_graphs"]
        started = time.perf_counter()
        # Without it a batch of one row would guard the graph on size >= 2 and compile another.
        with self._fx_config.patch(backed_size_oblivious=True):
            outputs = self._compiled(*args, **kwargs)
        compiled = self._counters["stats"]["unique_graphs"] - before
        if compiled:
            self.seconds += time.perf_counter() - started
            self.graphs += compiled
        return outputs


def compiled_call(model) -> CompiledCall | None:
    """The model's :class:`CompiledCall`, or None for a model not compiled by taskhub."""
    call = getattr(model, "_compiled_call_impl", None)
    return call if isinstance(call, CompiledCall) else None


def compile_metrics(task: Task, prefix: str) -> dict[str, float]:
    """``<prefix>_compile_runtime``: the seconds of the run's compiling calls (part of
    ``<prefix>_runtime``), for a task whose model was compiled; else nothing."""
    call = compiled_call(getattr(task, "_model", None))  # not loaded (nothing left to predict): nothing compiled
    if call is None:
        return {}
    log.info("model.compile: %d graph(s) compiled in %.1f s (inductor cache: %s)", call.graphs, call.seconds, inductor_cache_dir())
    return {f"{prefix}_compile_runtime": call.seconds}


def compile_seconds(model) -> float | None:
    """Seconds spent in the calls that compiled a graph (each includes running that first
    batch once), or None for a model that is not compiled."""
    call = compiled_call(model)
    return None if call is None else call.seconds
