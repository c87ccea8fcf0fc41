"""Typed options: the one helper every config field is declared with (a default, what it
does, the values it accepts), the check of a composed config against those bounds, and
the description ``taskhub --help`` prints. Plugins declare their task options with it too."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from omegaconf import MISSING

from taskhub.errors import TaskhubError

@dataclass(frozen=True)
class Bounds:
    """The range a numeric option must lie in; checked by :func:`check_options`."""

    ge: float | None = None  # at least
    gt: float | None = None  # greater than
    le: float | None = None  # at most

    def violated_by(self, value: float) -> str | None:
        if self.ge is not None and value < self.ge:
            return f"must be at least {_num(self.ge)}"
        if self.gt is not None and value <= self.gt:
            return f"must be greater than {_num(self.gt)}"
        if self.le is not None and value > self.le:
            return f"must be at most {_num(self.le)}"
        return None

    def __str__(self) -> str:
        parts = [f">= {_num(self.ge)}" if self.ge is not None else "", f"> {_num(self.gt)}" if self.gt is not None else ""]
        parts.append(f"<= {_num(self.le)}" if self.le is not None else "")
        return ", ".join(p for p in parts if p)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def option(
    default: Any = MISSING,
    doc: str = "",
    *,
    factory: Any = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    accepts: str | None = None,
) -> Any:
    """A config field with its description (shown by ``taskhub --help``) and the values it
    accepts beyond its type: a range (``ge``/``gt``/``le``) or ``choices`` for a string.
    Hydra checks the type; :func:`check_options` the rest, before any model loads.
    ``accepts`` describes the values of a field typed ``Any`` (Hydra cannot type a union)."""
    metadata = {"doc": doc, "bounds": Bounds(ge, gt, le) if (ge, gt, le) != (None, None, None) else None, "choices": choices}
    if accepts:
        metadata["accepts"] = accepts
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def check_options(config: Any, prefix: str = "") -> None:
    """Raise a one-line error for the first option outside its range or choices, by key.

    Walks a structured config (a :class:`RunConfig`, a task's config) recursively; an
    unset (``None``) option is the task's or library's default and is not checked."""
    for f in fields(config):
        value = getattr(config, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(value):
            check_options(value, f"{key}.")
            continue
        if value is None:
            continue
        bounds, choices = f.metadata.get("bounds"), f.metadata.get("choices")
        problem = None
        if bounds is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            problem = bounds.violated_by(value)
        elif choices is not None and value not in choices:
            problem = f"must be one of {', '.join(choices)}"
        if problem:
            raise TaskhubError(f"{key}={_num(value) if isinstance(value, float) else value}: {problem}")


def describe_options(config: Any, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(key, type, value, description)`` for every option of a structured config, for
    ``taskhub --help``; the type says what values are accepted (range, choices, null)."""
    hints = typing.get_type_hints(type(config))
    rows = []
    for f in fields(config):
        value = getattr(config, f.name)
        key = f"{prefix}{f.name}"
        if is_dataclass(value):
            rows.extend(describe_options(value, f"{key}."))
            continue
        hint = hints.get(f.name, Any)
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1
        metadata = _inherited_metadata(type(config), f)
        accepted = "|".join(metadata["choices"]) if metadata.get("choices") else metadata.get("accepts") or _type_name(args[0] if nullable else hint)
        if metadata.get("bounds") is not None:
            accepted += f" {metadata['bounds']}"
        rows.append((key, accepted + (", or null" if nullable else ""), value.value if isinstance(value, Enum) else value, metadata.get("doc", "")))
    return rows


def _inherited_metadata(cls: type, f) -> Mapping[str, Any]:
    """A field's option metadata; a subclass that only changes the default (``name``)
    keeps its base's description."""
    if f.metadata:
        return f.metadata
    for base in cls.__mro__[1:]:
        inherited = getattr(base, "__dataclass_fields__", {}).get(f.name)
        if inherited is not None and inherited.metadata:
            return inherited.metadata
    return {}


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and issubclass(hint, Enum):
        return "|".join(member.value for member in hint)
    origin = typing.get_origin(hint)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(hint))}]"
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))
