"""``mode=demo``: a Gradio app over a task's :meth:`~taskhub.task.Task.predict`.

The app is generic: each task describes its form and output as plain data
(:meth:`~taskhub.task.Task.demo_inputs`, :attr:`~taskhub.task.Task.demo_kind`,
:meth:`~taskhub.task.Task.demo_view`), and every submission goes through the same
``task.predict`` as ``mode=predict`` and the Python API, so the demo shows exactly
what they return. From Python::

    from taskhub import load_task
    from taskhub.demo import launch

    launch(load_task("text_classification", model="outputs/.../model"), [{"text": "a bowl of ramen"}])

Gradio is an optional extra (``pip install 'taskhub[demo]'``), imported only when an
app is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskhub.config import DataConfig, RunConfig
from taskhub.errors import TaskhubError

if TYPE_CHECKING:
    import gradio

    from taskhub.task import Task

#: The one line a missing extra gives.
MISSING_GRADIO = "mode=demo needs gradio, an optional extra: pip install 'taskhub[demo]'"
#: HTML ids of the app's parts (for styling and for browser tests).
INPUT_ID = "taskhub-input-{column}"
OUTPUT_ID = "taskhub-output"
SUBMIT_ID = "taskhub-submit"
PREDICTION_ID = "taskhub-prediction"


def import_gradio():
    try:
        import gradio
    except ImportError:
        raise TaskhubError(MISSING_GRADIO) from None
    return gradio


def serve(task: Task, run: RunConfig) -> dict[str, Any]:
    """``mode=demo``: serve the task's app with the run's ``demo.*`` settings until Ctrl-C."""
    import_gradio()  # first: without the extra, fail before the slow imports below
    from transformers import set_seed

    from taskhub.runner import engine_options

    set_seed(run.seed)  # as in every mode, so sampled generations repeat
    rows = examples(task, run.data, run.demo.examples)
    task.model  # noqa: B018 (loaded now: a model that does not load fails here, not at the first submission)
    stop_on_signals()
    launch(task, rows, host=run.demo.host, port=run.demo.port, share=run.demo.share, **engine_options(run))
    return {"task": task.name, "mode": "demo", "outputs": {}}


def stop_on_signals() -> None:
    """Let SIGINT and SIGTERM stop the server cleanly. A process started in the background
    by a script (or by a test runner's worker) inherits SIGINT ignored, and SIGTERM
    (``kill``, ``docker stop``) would otherwise end it without closing the server."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def examples(task: Task, data: DataConfig, count: int) -> list[dict[str, Any]]:
    """Up to ``count`` example inputs: the first usable rows of the first of ``data.predict``,
    ``data.test`` and ``data.validation`` there is (with no data named, the task's bundled
    demo data). File paths come resolved, as the runner reads them."""
    from itertools import islice

    from taskhub.data import read_split, split_path

    split = next((s for s in ("predict", "test", "validation") if split_path(task, data, s) is not None), None)
    if split is None or count < 1:
        return []
    rows = read_split(task, data, split, with_targets=False).dataset
    return list(islice(filter(None, map(task.demo_example, rows)), count))


def build_app(task: Task, examples: Sequence[Mapping[str, Any]] = (), **engine: Any) -> gradio.Blocks:
    """The task's Gradio app, not launched (``app.launch()`` it, or embed it in a notebook).

    One input widget per :meth:`~taskhub.task.Task.demo_inputs` column, a submit button,
    the prediction as :attr:`~taskhub.task.Task.demo_kind` says, the raw prediction
    fields, and ``examples`` (dicts of input columns) to click. ``engine`` takes
    :meth:`~taskhub.task.Task.predict`'s batching options.
    """
    gr = import_gradio()
    columns = task.demo_inputs()
    kind = task.demo_kind

    def predict(*values):
        record = dict(zip(columns, values))
        try:
            prediction = task.predict([record], source="demo input", **engine)[0]
        except TaskhubError as err:
            raise gr.Error(getattr(err, "reason", str(err))) from None
        return shown(kind, task.demo_view(record, prediction)), prediction

    model = task.model_config.name_or_path or task.default_model
    summary = (type(task).__doc__ or "").strip().split("\n")[0]
    with gr.Blocks(analytics_enabled=False, title=f"taskhub {task.name}") as app:
        gr.Markdown(f"## taskhub · {task.name}\n{summary}" + (f"\n\nModel: `{model}`" if model else ""))
        with gr.Row():
            with gr.Column():
                inputs = [input_widget(gr, column, widget) for column, widget in columns.items()]
                submit = gr.Button("Submit", variant="primary", elem_id=SUBMIT_ID)
            with gr.Column():
                output = output_widget(gr, kind)
                with gr.Accordion("Prediction fields", open=False, visible=kind != "json"):
                    raw = gr.JSON(show_label=False, elem_id=PREDICTION_ID)
        if examples:
            gr.Examples([[example[c] for c in columns] for example in examples], inputs=inputs)
        submit.click(predict, inputs, [output, raw], api_name="predict")
    return app


def launch(
    task: Task,
    examples: Sequence[Mapping[str, Any]] = (),
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    block: bool = True,
    **engine: Any,
) -> gradio.Blocks:
    """Build the app and serve it on ``host:port`` (None: the first free port from 7860),
    also through a public link with ``share``. Blocks until Ctrl-C; with ``block=False``
    returns the running app (its URL is ``app.local_url``; stop it with ``app.close()``)."""
    app = build_app(task, examples, **engine)
    try:
        app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block, ssr_mode=False)
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        raise TaskhubError(f"demo: cannot serve on {host}:{port or 'a port from 7860'}: {exc}") from None
    return app


def input_widget(gr, column: str, widget: str):
    common = {"label": column, "elem_id": INPUT_ID.format(column=column)}
    if widget == "text":
        return gr.Textbox(lines=3, max_lines=20, **common)
    if widget == "image":
        return gr.Image(type="filepath", **common)
    if widget == "audio":
        return gr.Audio(type="filepath", sources=["upload", "microphone"], **common)
    raise ValueError(f"unknown demo input widget {widget!r} for column {column!r} (text, image or audio)")


def output_widget(gr, kind: str):
    common = {"label": "Prediction", "elem_id": OUTPUT_ID}
    if kind == "label":
        return gr.Label(**common)
    if kind == "spans":
        return gr.HighlightedText(**common)
    if kind == "text":
        return gr.Textbox(lines=4, interactive=False, **common)
    if kind == "json":
        return gr.JSON(**common)
    raise ValueError(f"unknown demo output kind {kind!r} (label, spans, text or json)")


def shown(kind: str, view: Any) -> Any:
    """A task's :meth:`~taskhub.task.Task.demo_view` -> the output widget's value. Spans
    become Gradio's highlighted-text dict; a span that overlaps one listed before it (a
    less likely answer) or is empty is left out, since marks cannot nest."""
    if kind != "spans":
        return view
    text, spans = view
    kept: list[tuple[int, int, str]] = []
    for start, end, label in spans:
        if start < end and all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, label))
    entities = [{"entity": label, "start": start, "end": end} for start, end, label in sorted(kept)]
    return {"text": text, "entities": entities}
