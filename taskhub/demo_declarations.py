"""What a task declares about its ``mode=demo`` app, as plain data.

:mod:`taskhub.modes.demo` builds its form and output widget from these, so a task
describes its demo without importing gradio: the widget of each input, how a prediction
shows, the labels to list, example rows. :class:`~taskhub.task.Task` inherits them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class DemoDeclarations:
    """The demo side of a task (a :class:`~taskhub.task.Task` supplies ``modality``,
    ``input_columns`` and ``prediction_fields``)."""

    #: How the demo shows a prediction: ``"label"`` (label scores as bars), ``"spans"``
    #: (character spans marked in an input text), ``"boxes"`` (labelled boxes drawn on the
    #: input image), ``"masks"`` (labelled masks laid over it), ``"text"``, ``"vectors"``
    #: (embeddings) or ``"json"``. None: from :attr:`prediction_fields` (``label`` +
    #: ``score``: label; ``start`` + ``end`` + ``score``: spans; ``box``: boxes; ``mask``:
    #: masks; ``embedding``: vectors; else json).
    demo_output: ClassVar[str | None] = None
    #: One plain-language sentence under the demo's title: what to enter and what comes
    #: back, for someone who has never heard of the task. None: the class docstring's first line.
    demo_description: ClassVar[str | None] = None

    def label_names(self) -> list[str]:
        """The names the model predicts (classes, entity kinds), for the model card and the
        demo (listed under its title; each marked span kind given a colour). Default: none,
        for tasks whose outputs are not a label set (text, vectors, spans of an input)."""
        return []

    @property
    def demo_kind(self) -> str:
        """:attr:`demo_output`, or the kind the prediction fields imply."""
        if self.demo_output is not None:
            return self.demo_output
        fields = set(self.prediction_fields)
        if {"label", "score"} <= fields:
            return "label"
        if {"start", "end", "score"} <= fields:
            return "spans"
        for field, kind in (("box", "boxes"), ("mask", "masks"), ("embedding", "vectors")):
            if field in fields:
                return kind
        return "json"

    def demo_inputs(self) -> dict[str, str]:
        """Input column -> its demo widget: ``"text"``, ``"text_list"`` (comma-separated
        values, e.g. candidate labels: a list reaches :meth:`predict`), ``"image"`` or
        ``"audio"`` (upload or microphone; both reach :meth:`predict` as file paths). A
        multimodal task names one per column (``{"image": "image", "text": "text"}``).
        Default: every input column, as the task's modality."""
        kind = self.modality if self.modality in ("image", "audio") else "text"
        return dict.fromkeys(self.input_columns, kind)

    def demo_example(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """A data row -> the demo inputs it gives as an example, or None if it gives none
        (a value missing). Default: the row's values of :meth:`demo_inputs`."""
        columns = self.demo_inputs()
        if any(row.get(column) is None for column in columns):
            return None
        return {column: row[column] for column in columns}

    def demo_view(self, record: Mapping[str, Any], prediction: Mapping[str, Any]) -> Any:
        """What the demo shows for one :meth:`predict` result, by :attr:`demo_kind`:

        * ``label``: ``{label: score}`` from ``label`` / ``score`` (single values or lists);
        * ``spans``: ``(text, [(start, end, label), ...])``; by default the prediction's
          ``start`` / ``end`` (single values or lists, best first) index the last demo
          input (e.g. a question-answering context), labelled with their score;
        * ``boxes``: ``(image, [((xmin, ymin, xmax, ymax), "label score"), ...])`` from a
          prediction's ``box`` / ``label`` / ``score`` (single values or lists), over the
          first image input;
        * ``masks``: ``(image, [(mask, label), ...])`` from ``mask`` (a 2-D array or an
          image file of the mask) / ``label``, over the first image input;
        * ``text``: the prediction fields' text, lists one item per paragraph;
        * ``vectors``: the embedding's size and first values (a vector means little to read);
        * ``json``: the prediction as it is.
        """
        kind = self.demo_kind
        if kind == "label":
            labels, scores = prediction["label"], prediction["score"]
            if not isinstance(labels, list):
                labels, scores = [labels], [scores]
            return {str(label): float(score) for label, score in zip(labels, scores)}
        if kind == "spans":
            text = record[list(self.demo_inputs())[-1]]
            starts, ends, scores = (prediction[f] for f in ("start", "end", "score"))
            if not isinstance(starts, list):
                starts, ends, scores = [starts], [ends], [scores]
            return text, [(start, end, f"{score:.0%}") for start, end, score in zip(starts, ends, scores)]
        if kind in ("boxes", "masks"):
            image = record[next(c for c, widget in self.demo_inputs().items() if widget == "image")]
            field = "box" if kind == "boxes" else "mask"
            found = prediction[field]
            items = list(zip(found, prediction["label"], prediction.get("score", [None] * len(found)))) if isinstance(prediction["label"], list) else [
                (found, prediction["label"], prediction.get("score"))
            ]
            if kind == "boxes":
                return image, [((b["xmin"], b["ymin"], b["xmax"], b["ymax"]), label if score is None else f"{label} {score:.0%}") for b, label, score in items]
            return image, [(mask, str(label)) for mask, label, _ in items]
        if kind == "vectors":
            (field,) = [f for f in self.prediction_fields if f == "embedding"] or self.prediction_fields[:1]
            vector = prediction[field]
            return {"dimensions": len(vector), "first values": [round(float(v), 4) for v in vector[:8]]}
        if kind == "text":
            values = [prediction[field] for field in self.prediction_fields]
            return "\n\n".join(str(v) for value in values for v in (value if isinstance(value, list) else [value]))
        return dict(prediction)

