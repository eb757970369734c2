"""Progress bars for long work: shown on a terminal, silent when output is piped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Ticker(Protocol):
    def advance(self, n: int = 1) -> None: ...


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass


class _Rich:
    def __init__(self, progress: object, task: object) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)  # type: ignore[attr-defined]
        self._progress.refresh()  # type: ignore[attr-defined]


def wanted() -> bool:
    """True when stderr is an interactive terminal."""
    return sys.stderr.isatty()


@contextmanager
def progress(total: int, description: str, enabled: bool | None = None) -> Iterator[Ticker]:
    """A progress bar over ``total`` steps on stderr (only on a terminal unless ``enabled``)."""
    if not (wanted() if enabled is None else enabled):
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        # Redrawn on each step, not by a thread: conversion workers are forked while the bar
        # is shown, and a thread writing to the terminal at that moment could leave a lock
        # held in the child.
        auto_refresh=False,
    ) as bar:
        yield _Rich(bar, bar.add_task(description, total=total))
