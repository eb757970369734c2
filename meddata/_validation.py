"""What every part of ``meddata validate`` shares: the report it fills and small helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyarrow.parquet as pq

from meddata.dataset import check_relative
from meddata.errors import MeddataError

#: Shards checked at once (checksums, footers, tensor cells).
_THREADS = min(8, max(2, os.cpu_count() or 1))
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass
class ValidationReport:
    """Problems found (empty when the dataset is valid) and what was checked."""

    path: str
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    #: Footers of tensor tables' shards that passed their checksum, read once for the tensor
    #: checks; emptied before ``validate`` returns.
    _footers: dict[str, pq.FileMetaData] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``meddata validate --json``)."""
        return {
            "path": self.path,
            "ok": self.ok,
            "problems": self.problems,
            "checked": self.checked,
        }

    def count(self, what: str, n: int = 1) -> None:
        """Count ``n`` more of ``what`` as checked."""
        self.checked[what] = self.checked.get(what, 0) + n


def guarded(what: str, report: ValidationReport, check: Callable[[], None]) -> None:
    """Run ``check``; a failure to read is one line (its type only: the text may quote
    values), never a crash."""
    try:
        check()
    except Exception as exc:
        report.problems.append(f"the {what} could not be checked ({type(exc).__name__})")


def inside(rel: str, label: str, report: ValidationReport) -> bool:
    """Whether the manifest path ``rel`` stays inside the dataset (else a problem of ``label``)."""
    try:
        check_relative(rel)
    except MeddataError as exc:
        report.problems.append(f"{label}: {exc.message}")
        return False
    return True


def in_threads(work: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    """``[work(item) for item in items]``, a few items at a time, results in order."""
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(min(len(items), _THREADS)) as pool:
        return list(pool.map(work, items))
