"""Progress bars for long row-by-row jobs (predict, evaluation by prediction): rows done,
rows/s and the time left, on stderr, from the main process only. ``progress=null`` shows
them when stderr is a terminal (not in logs and pipes), ``true`` always, ``false`` never."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from taskhub.engine.sharding import is_main

T = TypeVar("T")


def shown(setting: bool | None) -> bool:
    wanted = sys.stderr.isatty() if setting is None else setting
    return wanted and is_main()


def progress(items: Iterable[T], total: int | None, desc: str, setting: bool | None, done: int = 0) -> Iterator[T]:
    """``items``, counted on a bar of ``total`` rows (None: unknown, rate only) that starts at ``done``."""
    from tqdm import tqdm

    with tqdm(items, total=total, initial=done, desc=desc, unit=" rows", file=sys.stderr, disable=not shown(setting), mininterval=0.5, dynamic_ncols=True) as bar:
        yield from bar
