"""A test-only adapter whose worker process dies on one unit (as a crashing decoder would)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from meddata.adapter import Adapter, UnitResult, WorkUnit


class CrashingAdapter(Adapter):
    """Three units of one person each; the unit named ``boom`` kills its process."""

    name = "crashing"
    dataset_name = "crashing"
    tables = ("person",)

    def discover(self) -> Iterator[WorkUnit]:
        for key in ("a", "boom", "c"):
            yield WorkUnit(key, key, key)

    def convert(self, unit: WorkUnit) -> UnitResult:
        if unit.payload == "boom":
            os._exit(3)
        result = UnitResult()
        result.add(
            "person",
            {
                "person_id": self.person_id(unit.payload),
                "gender_concept_id": 0,
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
            },
        )
        return result

    @classmethod
    def synthesize(cls, dest: str | Path, n: int = 8, seed: int = 0) -> Path:
        Path(dest).mkdir(parents=True, exist_ok=True)
        return Path(dest)
