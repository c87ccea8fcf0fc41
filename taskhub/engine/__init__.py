"""The execution engine: how a task's preprocess -> forward -> postprocess steps run.

* :mod:`~taskhub.engine.batching`: which rows share a batch (length-sorted, token budget).
* :mod:`~taskhub.engine.streaming`: the in-process predict stream (chunks read, preprocessed,
  batched, run and put back in input order); :meth:`taskhub.Task.predict_iter` is its face.
* :mod:`~taskhub.engine.sharding`: ranks of a torchrun / accelerate launch, contiguous row
  shards, and gathering their results on the main process.
* :mod:`~taskhub.engine.ray_backend`: ``predict.backend=ray``, the same stream on Ray Data
  actors.

Nothing here knows a task by name, and nothing here imports torch at import time.
"""
