"""The DICOM Basic Application Level Confidentiality Profile, loaded from the package data file
``meddata/data/dicom_basic_profile.json`` (converted from PS3.15 Table E.1-1)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources

from meddata.deid.options import DeidOptions

# DeidOptions field -> the profile's option name.
OPTION_NAMES = {
    "retain_longitudinal_dates": "retain_longitudinal_modified_dates",
    "retain_patient_characteristics": "retain_patient_characteristics",
    "retain_device_identity": "retain_device_identity",
    "clean_descriptors": "clean_descriptors",
}
# A combined basic action resolved without the IOD at hand: keep the attribute (empty or dummy)
# rather than remove it, so Type 1 and Type 2 attributes stay present.
_COMBINED = {"X/Z": "Z", "X/D": "D", "X/Z/D": "D", "Z/D": "D", "X/Z/U*": "U"}


@dataclass(frozen=True)
class Rule:
    """One row of the profile table."""

    tag: str
    name: str
    basic: str
    options: dict[str, str] = field(default_factory=dict)

    def action(self, options: DeidOptions) -> str:
        """The single action (X, Z, D, U, K or C) to apply under ``options``."""
        chosen = [
            self.options[OPTION_NAMES[flag]]
            for flag in OPTION_NAMES
            if getattr(options, flag) and OPTION_NAMES[flag] in self.options
        ]
        if "K" in chosen:
            return "K"
        if "C" in chosen:
            return "C"
        return _COMBINED.get(self.basic, self.basic)


@dataclass(frozen=True)
class Profile:
    """The table indexed for lookups by tag (int), with repeating-group masks."""

    name: str
    standard: str
    by_tag: dict[int, Rule]
    masked: tuple[tuple[int, int, Rule], ...]
    private: Rule | None

    def rule_for(self, tag: int) -> Rule | None:
        """The rule for a tag, or None when the profile does not list it."""
        rule = self.by_tag.get(tag)
        if rule is not None:
            return rule
        for value, mask, masked_rule in self.masked:
            if tag & mask == value:
                return masked_rule
        return None


@functools.cache
def load_profile() -> Profile:
    """Read and index the packaged profile table (once per process)."""
    raw = resources.files("meddata").joinpath("data/dicom_basic_profile.json").read_text()
    doc = json.loads(raw)
    by_tag: dict[int, Rule] = {}
    masked: list[tuple[int, int, Rule]] = []
    private: Rule | None = None
    for row in doc["attributes"]:
        rule = Rule(row["tag"], row["name"], row["basic"], dict(row.get("options", {})))
        if rule.tag == "private":
            private = rule
        elif "X" in rule.tag:
            value = int(rule.tag.replace("X", "0"), 16)
            mask = int("".join("0" if c == "X" else "F" for c in rule.tag), 16)
            masked.append((value, mask, rule))
        else:
            by_tag[int(rule.tag, 16)] = rule
    return Profile(doc["profile"], doc["standard"], by_tag, tuple(masked), private)
