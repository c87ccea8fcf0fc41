"""``model.backend=onnxruntime``: the task's model exported to ONNX once and run by ONNX Runtime.

Why: on CPUs without AMX (no fast bf16 matrix units) ONNX Runtime's int8 kernels beat
torch's fp32, bf16 and int8 paths on the same batches (benchmark row 1o); this backend
keeps taskhub level with a user who exports by hand, with the engine's batching intact.

The graph is exported with torch.onnx's dynamo exporter on the first batch (so its inputs
are exactly what the task passes; the TorchScript exporter mis-traces transformers'
attention masks: logits off by 1e-2 on padded batches), every dimension dynamic. It is
cached by checkpoint content (the model folder's bytes, or the weights when there is no
folder, the effective config, the input names and the export settings) under
``$TASKHUB_CACHE/onnx`` (default ``~/.cache/taskhub/onnx``), written to a temporary file
and renamed so that concurrent runs never see half a file. ``model.quantize=int8`` is
ONNX Runtime's dynamic quantization with one QInt8 weight scale per output channel.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from contextlib import contextmanager, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

from taskhub.errors import TaskhubError
from taskhub.fingerprints import folder_digest
from taskhub.rundir import atomic_path, user_cache

#: The pyproject extra that brings the backend's packages.
EXTRA = "pip install 'taskhub[onnx]'"
#: The ONNX opset the graphs are exported at; part of the cache key.
OPSET = 18
#: Bumped when the export or quantization recipe changes: old cache entries are then ignored.
RECIPE = 1
#: Graphs exported by this process (tests check that a cached graph is reused).
exports = 0


def require() -> None:
    """A one-line error naming the extra when a package of the backend is missing."""
    for module in ("onnxruntime", "onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            raise TaskhubError(f"model.backend=onnxruntime needs the '{module}' package: {EXTRA}") from None


def checkpoint_key(model, folder: str | None) -> str:
    """The content of what the graph is built from: the checkpoint folder's files when
    there is one (hashed once per process), else every weight; plus the effective config
    (``model.config`` overrides change the graph) and the library versions that trace it."""
    import torch
    import transformers

    digest = hashlib.sha256()
    if folder and os.path.isdir(folder):
        digest.update(b"folder\0" + folder_digest(folder).encode())
    else:
        for name, tensor in model.state_dict().items():
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\0".encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    config = {k: v for k, v in model.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(f"{type(model).__name__}|{torch.__version__}|{transformers.__version__}|{OPSET}|{RECIPE}".encode())
    return digest.hexdigest()[:32]


class OnnxModel:
    """A stand-in for the torch model at inference: called with the batch's tensors, it
    returns the model's own output class (a ``transformers`` ModelOutput) holding the
    graph's named outputs as torch tensors. It has the attributes the engine reads
    (``config``, ``device``, ``training``) and nothing else: training goes through torch."""

    def __init__(self, model, folder: str | None, quantize: bool):
        import torch

        self._model = model  # exported on the first batch with each set of input names
        self._base_key = checkpoint_key(model, folder)
        self.quantize = quantize
        self.config = model.config
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.training = False
        self._sessions: dict[tuple[str, ...], Any] = {}
        self.graph_paths: dict[tuple[str, ...], Path] = {}

    def eval(self):
        return self

    def train(self, mode: bool = True):
        if mode:
            raise TaskhubError("model.backend=onnxruntime runs inference only: train with model.backend=torch")
        return self

    def __getattr__(self, name: str):
        """A torch module's attribute (``to``, ``parameters``: the Trainer evaluating a loss)
        is a one-line refusal rather than an AttributeError deep inside transformers."""
        import torch

        if not name.startswith("_") and hasattr(torch.nn.Module, name):
            raise TaskhubError(
                f"model.backend=onnxruntime serves predict and evaluation by prediction; this run needs the torch model "
                f"(its '{name}', e.g. mode=evaluate through the Trainer): use model.backend=torch"
            )
        raise AttributeError(name)

    def __call__(self, **inputs):
        import torch

        names = tuple(sorted(k for k, v in inputs.items() if v is not None))
        if "labels" in names:
            raise TaskhubError(
                "model.backend=onnxruntime serves predictions; a loss (labels, e.g. mode=evaluate through the Trainer) needs model.backend=torch"
            )
        if names not in self._sessions:
            self._sessions[names] = self._session(names, inputs)
        session, output_names, output_cls = self._sessions[names]
        feed = {name: inputs[name].detach().cpu().numpy() for name in names}
        values = session.run(output_names, feed)
        return output_cls(**{name: torch.from_numpy(value) for name, value in zip(output_names, values)})

    # ------------------------------------------------------------------ export
    def _session(self, names: tuple[str, ...], example: dict[str, Any]):
        import onnxruntime as ort
        import torch

        example = {name: _at_least_two(example[name]) for name in names}
        with torch.inference_mode():
            reference = self._model(**example)
        output_names = [k for k, v in reference.items() if isinstance(v, torch.Tensor)]
        fp32 = self._cached(f"{self._base_key}-{_names_key(names)}-fp32", lambda path: _export(self._model, example, output_names, path))
        path = fp32
        if self.quantize:
            path = self._cached(f"{self._base_key}-{_names_key(names)}-int8", lambda target: _quantize(fp32, target))
        self.graph_paths[names] = path
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()  # taskhub's (and --threads') setting, not all cores
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the graph's unused-initializer notices are not the user's
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return session, output_names, type(reference)

    @staticmethod
    def _cached(name: str, build) -> Path:
        """``<cache>/<name>.onnx``, built by ``build(temp_path)`` if absent, then renamed into place."""
        folder = user_cache("onnx")
        path = folder / f"{name}.onnx"
        if path.is_file():
            return path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as temp:
                build(temp)
        except OSError as exc:
            raise TaskhubError(f"model.backend=onnxruntime: cannot write the graph cache {folder}: {exc.strerror} (set TASKHUB_CACHE to a writable folder)") from None
        return path


def _names_key(names: tuple[str, ...]) -> str:
    return hashlib.sha256("|".join(names).encode()).hexdigest()[:8]


def _at_least_two(tensor):
    """The example batch doubled when it has one row: the exporter would fix a size-1
    batch dimension as a constant."""
    import torch

    return torch.cat([tensor, tensor]) if tensor.ndim and tensor.shape[0] == 1 else tensor


def _export(model, example: dict[str, Any], output_names: list[str], path: Path) -> None:
    global exports
    import torch

    dims = {name: {i: torch.export.Dim.AUTO for i in range(value.ndim)} for name, value in example.items()}
    with _quiet_exporter():
        try:
            program = torch.onnx.export(
                model, (), kwargs=example, input_names=list(example), output_names=output_names, dynamic_shapes=dims,
                opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
            )
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TaskhubError(f"model.backend=onnxruntime: cannot export {type(model).__name__} to ONNX: {first}") from None
        program.save(str(path))
    exports += 1


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights QInt8 with a scale per output channel (the per-matrix scale
    cost the MiniLM food classifier accuracy in torch too), activations per batch.

    The quantizer gets the graph loaded, not its path: given a path it writes a shape-
    inferred copy beside it under a fixed name (``<name>-inferred.onnx``) and deletes it,
    so two processes quantizing one cached graph (the ranks of a torchrun job) read each
    other's half-written copy or find it gone. Given the graph, it works in a folder of its own."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_exporter():
        quantize_dynamic(onnx.load(str(source)), str(target), weight_type=QuantType.QInt8, per_channel=True)


@contextmanager
def _quiet_exporter():
    """The exporter prints its progress and warns about torch internals, the quantizer logs
    advice on the root logger: not the user's business."""
    import logging

    loggers = [logging.getLogger("torch.onnx"), logging.getLogger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
