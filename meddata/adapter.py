"""The adapter contract: ``discover()`` lists work units, ``convert(unit)`` turns one into rows.

``convert`` must be a pure function of its unit (no shared state): that single rule gives
parallel, resumable and distributed conversion from one code path.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from meddata.errors import UsageError
from meddata.ids import stable_id

if TYPE_CHECKING:
    from meddata.deid import Deidentifier

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of a source: a file, a batch of files, a chunk of CSV rows.

    ``key`` is stable across runs and names the unit in the journal and quarantine report;
    ``fingerprint`` changes when the unit's input changes (sizes, mtimes); ``payload`` is
    whatever small, picklable data ``convert`` needs.
    """

    key: str
    payload: Any = None
    fingerprint: str = ""


@dataclass(frozen=True)
class QuarantineEntry:
    """An input that was skipped, with the reason. Never holds a PHI value."""

    item: str
    reason: str
    error: str = ""

    def to_dict(self, unit: str) -> dict[str, str]:
        return {"unit": unit, "item": self.item, "reason": self.reason, "error": self.error}


@dataclass
class UnitResult:
    """What ``convert(unit)`` returns: rows per table, and what had to be quarantined."""

    tables: dict[str, Rows | pa.Table] = field(default_factory=dict)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    deid_counts: Counter[str] = field(default_factory=Counter)

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Append one row to ``table``."""
        rows = self.tables.setdefault(table, [])
        assert isinstance(rows, list)
        rows.append(row)

    def skip(self, item: str, reason: str, error: BaseException | None = None) -> None:
        """Quarantine ``item`` with a reason (no PHI values in ``reason``)."""
        self.quarantine.append(QuarantineEntry(item, reason, type(error).__name__ if error else ""))


@dataclass(frozen=True)
class OptionSpec:
    """An adapter option settable from the CLI as ``-O name=value``."""

    default: str
    choices: tuple[str, ...] = ()
    help: str = ""


class Adapter(ABC):
    """Base class of every source adapter. Subclasses set the class attributes and implement
    ``discover``, ``convert`` and ``synthesize``."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    title: ClassVar[str] = ""
    dataset_name: ClassVar[str]
    dataset_version: ClassVar[str] = "1.0"
    source_release: ClassVar[str] = ""
    source_url: ClassVar[str] = ""
    status: ClassVar[str] = "stable"
    tables: ClassVar[tuple[str, ...]] = ()
    # Release-level files (fnmatch patterns relative to the source, e.g. "labels/*.json"):
    # named as they are in quarantine reports under de-identification, since they belong to
    # the release, not to a patient. Every other source path there becomes a keyed id.
    release_files: ClassVar[tuple[str, ...]] = ()
    label_names: ClassVar[tuple[str, ...]] = ()
    sensitive_attributes: ClassVar[tuple[str, ...]] = ()
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {}

    def __init__(
        self,
        source: str | Path,
        options: Mapping[str, str] | None = None,
        *,
        deid_key: bytes | None = None,
        deid_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.source = Path(source)
        self.options = self.resolve_options(options or {})
        self._deid_key = deid_key
        self._deid_options = dict(deid_options or {})
        self._deid: Deidentifier | None = None

    @classmethod
    def resolve_options(cls, options: Mapping[str, str]) -> dict[str, str]:
        """Defaults plus ``options``, each checked against its spec."""
        unknown = sorted(set(options) - set(cls.option_specs))
        if unknown:
            known = ", ".join(sorted(cls.option_specs)) or "none"
            raise UsageError(
                f"Adapter {cls.name} has no option {unknown[0]!r}.", f"Its options: {known}."
            )
        out = {k: spec.default for k, spec in cls.option_specs.items()}
        for k, v in options.items():
            choices = cls.option_specs[k].choices
            if choices and v not in choices:
                raise UsageError(
                    f"Option {k}={v!r} is not valid for {cls.name}.",
                    f"Choose one of: {', '.join(choices)}.",
                )
            out[k] = v
        return out

    # -- the contract -------------------------------------------------------------------------
    @abstractmethod
    def discover(self) -> Iterator[WorkUnit]:
        """Yield the source's work units, cheaply and in a deterministic order."""

    @abstractmethod
    def convert(self, unit: WorkUnit) -> UnitResult:
        """Turn one work unit into rows per table (de-identified when a key is set)."""

    def convert_parts(self, unit: WorkUnit) -> Iterator[UnitResult]:
        """``convert(unit)`` in consecutive parts, for units whose payload is too large to hold
        at once: the engine writes each part's payload rows to the unit's shard before asking
        for the next. The parts together must equal ``convert(unit)``; by default, one part."""
        yield self.convert(unit)

    @classmethod
    @abstractmethod
    def synthesize(cls, dest: str | Path, n: int = 8, seed: int = 0) -> Path:
        """Write a small fake source in the exact upstream layout; returns its root."""

    def finalize_options(self) -> dict[str, Any]:
        """Options recorded in the manifest (never secrets)."""
        return dict(self.options)

    # -- helpers shared by adapters -----------------------------------------------------------
    @property
    def deid(self) -> Deidentifier | None:
        """The de-identifier for this run, or None when de-identification is off."""
        if self._deid is None and self._deid_key is not None:
            from meddata.deid import Deidentifier, DeidOptions

            self._deid = Deidentifier(self._deid_key, DeidOptions.from_mapping(self._deid_options))
        return self._deid

    def person_id(self, source_person_id: str) -> int:
        """The int64 person id for a source patient id (a keyed pseudonym under de-identification)."""
        deid = self.deid
        if deid is not None:
            return deid.person_id(source_person_id)
        return stable_id(f"{self.name}/person", source_person_id)

    def row_id(self, kind: str, *parts: object) -> int:
        """A stable int64 id for any other row (image, note, occurrence...)."""
        return stable_id(f"{self.name}/{kind}", *parts, key=self._deid_key)

    def shift_date(self, value: dt.date | None, source_person_id: str) -> dt.date | None:
        """Shift a date by the person's offset under de-identification; unchanged otherwise."""
        deid = self.deid
        if value is None or deid is None:
            return value
        return deid.shift_date(value, source_person_id)

    def clean_text(
        self,
        text: str | None,
        source_person_id: str,
        result: UnitResult,
        extra_names: list[str] | None = None,
    ) -> str | None:
        """De-identify free text when a key is set (counts go to the de-identifier and are
        collected per unit). ``extra_names`` are names already found elsewhere for this person,
        e.g. in the full report when its sections are cleaned one by one."""
        deid = self.deid
        if text is None or deid is None:
            return text
        return deid.text(text, source_person_id, extra_names or ()).text

    def names_in(self, text: str | None) -> list[str]:
        """The person names the de-identifier finds in ``text`` (empty when it is off)."""
        deid = self.deid
        if not text or deid is None:
            return []
        return [text[s.start : s.end] for s in deid.find_phi(text) if s.type == "NAME"]

    def collect_deid_counts(self, result: UnitResult) -> UnitResult:
        """Move the de-identifier's counts for this unit into ``result``."""
        if self.deid is not None:
            result.deid_counts.update(self.deid.take_counts())
        return result
