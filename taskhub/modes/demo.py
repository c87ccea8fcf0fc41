"""``mode=demo``: a Gradio app over a task's :meth:`~taskhub.task.Task.predict`.

The app is generic: each task describes its form and output as plain data
(:meth:`~taskhub.task.Task.demo_inputs`, :attr:`~taskhub.task.Task.demo_kind`,
:meth:`~taskhub.task.Task.demo_view`, :attr:`~taskhub.task.Task.demo_description`,
:meth:`~taskhub.task.Task.label_names`), and every submission goes through the same
``task.predict`` as ``mode=predict`` and the Python API, so the demo shows exactly
what they return. From Python::

    from taskhub import load_task
    from taskhub.modes.demo import launch

    launch(load_task("text_classification", model="outputs/.../model"), [{"text": "a bowl of ramen"}])

Gradio is an optional extra (``pip install 'taskhub[demo]'``), imported only when an
app is built.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskhub.config import DataConfig, RunConfig
from taskhub.errors import BadRowError, TaskhubError

if TYPE_CHECKING:
    import gradio

    from taskhub.task import Task

log = logging.getLogger("taskhub")

#: The one line a missing extra gives.
MISSING_GRADIO = "mode=demo needs gradio, an optional extra: pip install 'taskhub[demo]'"
#: HTML ids of the app's parts (for styling and for browser tests).
INPUT_ID = "taskhub-input-{column}"
OUTPUT_ID = "taskhub-output"
SUBMIT_ID = "taskhub-submit"
PREDICTION_ID = "taskhub-prediction"
DESCRIPTION_ID = "taskhub-description"
#: Label bars shown at most; a task with a ``top_k`` option is asked for at least this many.
LABEL_BARS = 5
#: Labels listed under the title at most (an ImageNet model has 1,000).
LISTED_LABELS = 30
#: What the app asks for when a submission leaves a widget empty.
EMPTY_INPUT = {
    "text": "Please enter some text",
    "text_list": "Please enter one or more values, separated by commas",
    "image": "Please upload an image",
    "audio": "Please upload or record audio",
}
#: Colours of marked span labels, in the order of :meth:`~taskhub.task.Task.label_names` (Gradio's palette).
SPAN_COLOURS = ("red", "green", "blue", "yellow", "purple", "teal", "orange", "cyan", "lime", "pink")
#: Gradio's first port when ``demo.port`` is unset, and how many after it it tries.
FIRST_PORT, PORTS_TRIED = 7860, 100
#: A fixed-height image box, and a small image (a 32x32 digit) scaled up to fill it:
#: Gradio's preview only ever scales images down. Display only: predict gets the upload.
CSS = ".taskhub-image img { object-fit: contain !important; }"


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


    set_seed(run.seed)  # as in every mode, so sampled generations repeat
    rows = examples(task, run.data, run.demo.examples)
    task.model  # noqa: B018 (loaded now: a model that does not load fails here, not at the first submission)
    stop_on_signals()
    launch(task, rows, host=run.demo.host, port=run.demo.port, share=run.demo.share, **run.engine_options())
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
    from taskhub.data import read_split, split_path

    split = next((s for s in ("predict", "test", "validation") if split_path(task, data, s) is not None), None)
    if split is None or count < 1:
        return []
    rows = read_split(task, data, split, with_targets=False).dataset
    return list(itertools.islice(filter(None, map(task.demo_example, rows)), count))


def build_app(task: Task, examples: Sequence[Mapping[str, Any]] = (), **engine: Any) -> gradio.Blocks:
    """The task's Gradio app, not launched (``app.launch()`` it, or embed it in a notebook).

    A title with the task's :attr:`~taskhub.task.Task.demo_description`, its labels and
    the model; one input widget per :meth:`~taskhub.task.Task.demo_inputs` column, a
    submit button, the prediction as :attr:`~taskhub.task.Task.demo_kind` says, the raw
    prediction fields, and ``examples`` (dicts of input columns) that run when clicked.
    ``engine`` takes :meth:`~taskhub.task.Task.predict`'s batching options.
    """
    gr = import_gradio()
    columns = task.demo_inputs()
    labels = task.label_names()
    predictor = with_label_bars(task)

    def answer(*values):
        record = {column: widget_value(widget, value) for (column, widget), value in zip(columns.items(), values)}
        empty = empty_input(columns, record)
        if empty:
            raise gr.Error(empty)
        try:
            prediction = predictor.predict([record], source="demo input", **engine)[0]
            return shown(task.demo_kind, predictor.demo_view(record, prediction)), prediction
        except Exception as err:
            raise gr.Error(error_message(err)) from None

    with styled_blocks(gr, title=f"taskhub {task.name}") as app:
        gr.Markdown(description(task, labels), elem_id=DESCRIPTION_ID)
        with gr.Row():
            with gr.Column():
                inputs = [input_widget(gr, column, widget) for column, widget in columns.items()]
                submit = gr.Button("Submit", variant="primary", elem_id=SUBMIT_ID)
            with gr.Column():
                output = output_widget(gr, task.demo_kind, labels)
                with gr.Accordion("Prediction fields", open=False, visible=task.demo_kind != "json"):
                    raw = gr.JSON(show_label=False, elem_id=PREDICTION_ID)
        if examples:
            rows = [[", ".join(map(str, example[c])) if widget == "text_list" else example[c] for c, widget in columns.items()] for example in examples]
            gr.Examples(rows, inputs=inputs, outputs=[output, raw], fn=answer, run_on_click=True, cache_examples=False)
        submit.click(answer, inputs, [output, raw], api_name="predict")
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
    returns the running app (its URL is ``app.local_url``; stop it with ``app.close()``).
    What it prints and raises names the ``demo.*`` options, the ones a person sets."""
    check_host(host)
    app = build_app(task, examples, **engine)
    try:
        app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    except OSError:  # Gradio's message names its launch() arguments
        if port is None:
            raise TaskhubError(f"no free port from {FIRST_PORT} to {FIRST_PORT + PORTS_TRIED - 1}: pick one with demo.port=<n>") from None
        raise TaskhubError(f"demo.port={port} is in use: pick another with demo.port=<n> or leave it unset (the first free port from {FIRST_PORT})") from None
    print(f"taskhub demo: {app.local_url} (Ctrl-C to stop)", flush=True)
    if app.share_url:
        print(f"taskhub demo: public link {app.share_url} (temporary)", flush=True)
    elif share:
        print("taskhub demo: demo.share=true found no public link (no internet connection?); serving locally only", flush=True)
    else:
        print("taskhub demo: demo.share=true adds a temporary public link", flush=True)
    if block:
        app.block_thread()
    return app


def check_host(host: str) -> None:
    """Refuse a host that is not an address of this machine before serving: Gradio would
    try, and then say the same as for a port in use."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
    except OSError:
        raise TaskhubError(f"demo.host={host} is not an address of this machine: use 127.0.0.1 (this machine only) or 0.0.0.0 (your network)") from None


def with_label_bars(task: Task) -> Task:
    """The task the app predicts with. Label bars show up to :data:`LABEL_BARS` scores, so
    a task with a ``top_k`` option gets a copy asking for at least that many (a binary
    classifier then shows both labels whatever ``task.top_k``); otherwise the task itself."""
    top_k = getattr(task.config, "top_k", None)
    if task.demo_kind != "label" or top_k is None or top_k >= LABEL_BARS:
        return task
    task.model  # noqa: B018 (loaded before copying, so the copy shares it)
    predictor = copy.copy(task)
    predictor.config = dataclasses.replace(task.config, top_k=LABEL_BARS)
    return predictor


def empty_input(columns: Mapping[str, str], record: Mapping[str, Any]) -> str | None:
    """What to ask for when a widget is left empty (None: all filled): the one check of a
    submission before :meth:`~taskhub.task.Task.predict`, for every widget kind."""
    for column, widget in columns.items():
        value = record[column]
        if value is None or (isinstance(value, str) and not value.strip()) or value == []:
            return EMPTY_INPUT[widget] + (f" ({column})" if len(columns) > 1 else "")
    return None


def error_message(err: Exception) -> str:
    """What the page says about a failed submission: the reason of a bad row (the row
    number of a one-row submission says nothing), a taskhub error's message, or a
    library's exception with its type (also logged with its traceback)."""
    if isinstance(err, BadRowError):
        return err.reason
    if isinstance(err, TaskhubError):
        return str(err)
    log.error("demo: the submission failed", exc_info=err)
    return f"{type(err).__name__}: {err}"


def description(task: Task, labels: Sequence[str]) -> str:
    """The title, a plain sentence on what to do, the labels and the model (Markdown)."""
    docstring = (type(task).__doc__ or "").strip().split("\n")[0]
    lines = [f"## taskhub · {task.name}", task.demo_description or docstring]
    if labels:
        more = len(labels) - LISTED_LABELS
        lines.append("**Labels:** " + ", ".join(labels[:LISTED_LABELS]) + (f" and {more} more" if more > 0 else ""))
    model = task.model_config.name_or_path or task.default_model
    if model:
        lines.append(f"**Model:** `{model}`")
    return "\n\n".join(lines)


def styled_blocks(gr, **options) -> gradio.Blocks:
    """``gr.Blocks`` with :data:`CSS`. Gradio 6 wants CSS given to ``launch()`` and warns
    here, but only CSS given here reaches an app its caller launches."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The parameters have been moved", category=UserWarning)
        return gr.Blocks(analytics_enabled=False, css=CSS, **options)


def input_widget(gr, column: str, widget: str):
    common = {"label": column, "elem_id": INPUT_ID.format(column=column)}
    if widget == "text":
        return gr.Textbox(lines=3, max_lines=20, **common)
    if widget == "text_list":
        return gr.Textbox(lines=1, placeholder="values separated by commas", **common)
    if widget == "image":
        return explain_unreadable(gr, gr.Image(type="filepath", height=320, elem_classes="taskhub-image", **common), "image")
    if widget == "audio":
        return explain_unreadable(gr, gr.Audio(type="filepath", sources=["upload", "microphone"], **common), "audio")
    raise ValueError(f"unknown demo input widget {widget!r} for column {column!r} (text, text_list, image or audio)")


def widget_value(widget: str, value: Any) -> Any:
    """A widget's value as :meth:`~taskhub.task.Task.predict` takes it: a text list's
    comma-separated values as a list (an example row's list stays one)."""
    if widget == "text_list" and isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def explain_unreadable(gr, widget, what: str):
    """Gradio decodes some uploads itself (an image, audio to convert) before the app's
    function runs, and a failure there shows as a bare "Error": say what went wrong, with
    the file's own name for the server's copy of it."""
    decode = widget.preprocess

    def preprocess(payload):
        try:
            return decode(payload)
        except Exception as err:
            reason = str(err)
            if payload.path and payload.orig_name:
                reason = reason.replace(payload.path, payload.orig_name)
            raise gr.Error(f"Cannot read the uploaded {what}: {reason}") from None

    widget.preprocess = preprocess
    return widget


def output_widget(gr, kind: str, labels: Sequence[str]):
    common = {"label": "Prediction", "elem_id": OUTPUT_ID}
    if kind == "label":
        return gr.Label(num_top_classes=LABEL_BARS, **common)
    if kind == "spans":
        colours = dict(zip(labels, itertools.cycle(SPAN_COLOURS)))
        return gr.HighlightedText(show_legend=bool(labels), color_map=colours or None, **common)
    if kind == "text":
        return gr.Textbox(lines=4, interactive=False, **common)
    if kind in ("boxes", "masks"):
        return gr.AnnotatedImage(show_legend=True, **common)
    if kind in ("json", "vectors"):
        return gr.JSON(**common)
    raise ValueError(f"unknown demo output kind {kind!r} (label, spans, boxes, masks, text, vectors or json)")


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
