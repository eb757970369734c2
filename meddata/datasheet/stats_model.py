"""Typed shape of the statistics a Healthsheet carries (computed, never typed by hand)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: How a null value is shown among the values of a categorical column.
MISSING = "(missing)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Summary(_Strict):
    """Distribution of a per-patient count."""

    patients: int = Field(description="Patients with at least one row.")
    total: int
    min: int
    median: float
    mean: float
    max: int


class Category(_Strict):
    """How many samples and distinct persons have one value of a categorical column."""

    samples: int
    persons: int


class LabelCounts(_Strict):
    """Label values over samples: 1 positive, 0 negative, -1 uncertain, null/NaN missing."""

    positive: int
    negative: int
    uncertain: int
    missing: int
    other: int = Field(default=0, description="Any other value (should be 0).")

    @property
    def total(self) -> int:
        """All samples counted."""
        return self.positive + self.negative + self.uncertain + self.missing + self.other


class SplitStatistics(_Strict):
    """Statistics of one split (or of all samples)."""

    persons: int
    samples: int
    demographics: dict[str, dict[str, Category]] = Field(
        default_factory=dict, description="attribute → value (null shown as '(missing)') → counts"
    )
    labels: dict[str, LabelCounts] = Field(default_factory=dict)


class DeidSummary(_Strict):
    """De-identification as recorded in the manifest."""

    applied: bool
    total_replaced: int = 0
    counts: dict[str, int] = Field(default_factory=dict, description="PHI type → replacements")
    profile: dict[str, Any] | None = None
    key_fingerprint: str | None = None


#: How statistics are computed. Raise it when ``meddata.datasheet.stats`` changes what a field
#: holds: stored statistics of another version are then computed again, not carried forward.
STATISTICS_VERSION = 1


class Statistics(_Strict):
    """Everything measurable about a converted dataset."""

    dataset: str
    version: str
    statistics_version: int | None = Field(
        default=None,
        description="How these statistics were computed (STATISTICS_VERSION); absent in "
        "datasheets written before it was recorded.",
    )
    created: str | None = Field(default=None, description="Manifest creation time.")
    source_release: str | None = Field(
        default=None, description="The source release that was converted (from the manifest)."
    )
    adapter: dict[str, Any] | None = Field(
        default=None,
        description="How it was converted: adapter name, version and options (from the manifest).",
    )
    tables: dict[str, int] = Field(description="Rows per table.")
    patients: int | None = None
    samples: int | None = None
    studies: int | None = None
    per_patient: dict[str, Summary] = Field(
        default_factory=dict, description="samples / studies / images / volumes … per patient"
    )
    modalities: dict[str, int] = Field(default_factory=dict, description="Rows per modality.")
    devices: dict[str, int] = Field(default_factory=dict, description="Samples per device.")
    manufacturers: dict[str, int] = Field(default_factory=dict)
    sites: dict[str, int] = Field(default_factory=dict, description="Samples per site.")
    labels: list[str] = Field(default_factory=list, description="Task label names.")
    overall: SplitStatistics | None = None
    splits: dict[str, dict[str, SplitStatistics]] = Field(
        default_factory=dict, description="split set → split name → statistics"
    )
    missingness: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="table → column → fraction of null values"
    )
    deid: DeidSummary
    quarantined: int = 0
    split_reports: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Split reports stored in the manifest, by split set."
    )
