"""``mimic-cxr-jpg``: the MIMIC-CXR-JPG v2.0.0 release (PhysioNet) → ``person``, ``note``,
``image_occurrence``, ``image`` and ``samples``.

Source layout (SOURCE_LAYOUTS.md)::

    files/p1X/p{subject_id}/s{study_id}/{dicom_id}.jpg
    mimic-cxr-2.0.0-metadata.csv.gz   dicom_id, subject_id, study_id, ViewPosition, Rows, Columns,
                                      StudyDate, StudyTime, ...
    mimic-cxr-2.0.0-chexpert.csv.gz   subject_id, study_id + 14 labels (alphabetical)
    mimic-cxr-2.0.0-negbio.csv.gz     same columns
    mimic-cxr-2.0.0-split.csv.gz      dicom_id, study_id, subject_id, split (train/validate/test)
    files/p1X/p{subject_id}/s{study_id}.txt     reports (MIMIC-CXR), when present

Mapping: one ``person`` per subject (MIMIC-CXR-JPG carries no demographics: concepts 0, the
demographics live in MIMIC-IV); one ``note`` per study report, with section columns, when the
report file is present (absent reports simply give no note, and ``samples.note_id`` is null);
one ``image_occurrence`` (a series, dated by the shifted StudyDate) and one ``image`` per JPEG, the
JPEG bytes kept as-is with codec ``jpeg`` (by default, ``-O verify=header``, the header and end
marker are checked, pixels are not decoded; ``-O verify=decode`` decodes every JPEG strictly and
quarantines those that fail, see ``_cxr_images.verify_image``); one ``samples`` row per image
with the study's 14 labels (``-O labels=chexpert|negbio``; 1, 0, -1 and null kept distinct),
``view`` (Frontal/Lateral), ``view_position`` (PA, AP, LATERAL, LL...), the official split
(train/validate/test) as published and ``study_order`` (int32): the study's rank in time among the
subject's studies, by StudyDate then StudyTime (1 = first; studies at the same date and time share
a rank; null when the study's StudyDate is not a valid date). It is computed from the source dates
before any shift, and a per-person shift keeps the order, so it is the same with and without
de-identification. The release has no age (MIMIC-CXR-JPG carries no demographics; anchor ages are
in MIMIC-IV's ``patients`` table), so ``samples`` has no ``age`` column and ``age_group`` is null.

Unconfirmed details, both variants handled: the reports are looked for at
``files/p1X/p{subject}/s{study}.txt`` beside the images, or in a ``mimic-cxr-reports/files/…``
tree beside them (as the reports zip extracts); the metadata and label tables are read gzipped
(``.csv.gz``) or plain (``.csv``).

Split values are read case-insensitively (``Train``, ``VALIDATE``; ``valid``/``validation``/``val``
are read as ``validate``), each such spelling reported once; a blank or unknown value leaves the
image's split null and is quarantined (the value itself is not shown), and a subject whose images
are in more than one split is reported (the official split then leaks that person).

Bad input is quarantined with ids and the kind of problem only: missing or corrupt JPEG files,
duplicate metadata rows, label rows for studies without images, images without a split row,
conflicting split rows, blank or unknown split values, non-numeric labels, studies without a label
row, ragged CSV rows, rows that are not valid UTF-8, unexpected (ignored) or missing columns, and
report files with bytes that are not valid UTF-8 (kept, the bytes replaced with U+FFFD; a UTF-8
byte-order mark is dropped). Report sections end at any heading; only known headings fill columns.
A missing table or required column, or a table that is truncated, corrupt (a damaged ``.gz``) or
not parseable as CSV, is a ``SourceError`` naming it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meddata.adapter import Adapter, OptionSpec, UnitResult, WorkUnit
from meddata.adapters._cxr_images import VERIFY_HELP, CorruptImage, encoded_image
from meddata.adapters._cxr_release import (
    EHR_TYPE_CONCEPT,
    ENGLISH_CONCEPT,
    LABELS,
    SAMPLES_EXTRA,
    UTF8_CONCEPT,
    bad_split_reason,
    check_columns,
    mixed_split_reason,
    normalise_split,
    ragged_issue,
    read_table,
    respelled_issues,
    typed_table,
)
from meddata.errors import SourceError

PREFIX = "mimic-cxr-2.0.0-"
METADATA_COLUMNS = (
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)
METADATA_REQUIRED = ("dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate")
LABEL_COLUMNS = ("subject_id", "study_id", *sorted(LABELS))
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
# The columns each table of the release has (others are reported and ignored).
TABLE_COLUMNS = {
    "metadata": METADATA_COLUMNS,
    "chexpert": LABEL_COLUMNS,
    "negbio": LABEL_COLUMNS,
    "split": SPLIT_COLUMNS,
}
# The release's split names, and the other spellings read as them (case-insensitively).
SPLITS = ("train", "validate", "test")
SPLIT_NAMES = {"train": "train", "validate": "validate", "test": "test", "valid": "validate"}
SPLIT_NAMES |= {"validation": "validate", "val": "validate"}
IMAGES_PER_UNIT = 256
FRONTAL = {"PA", "AP", "AP AXIAL", "PA LLD", "AP LLD", "AP RLD", "PA RLD"}
LATERAL = {"LATERAL", "LL", "RL", "LAO", "RAO", "LPO", "XTABLE LATERAL", "SWIMMERS"}
SECTION_HEADINGS = {
    "EXAMINATION": "section_narrative",
    "EXAM": "section_narrative",
    "INDICATION": "section_history",
    "HISTORY": "section_history",
    "CLINICAL HISTORY": "section_history",
    "TECHNIQUE": "section_technique",
    "COMPARISON": "section_comparison",
    "COMPARISONS": "section_comparison",
    "FINDINGS": "section_findings",
    "IMPRESSION": "section_impression",
    "CONCLUSION": "section_impression",
}
NOTE_SECTIONS = tuple(dict.fromkeys(SECTION_HEADINGS.values()))
_HEADING = re.compile(r"^\s*([A-Z][A-Z ()/]{2,30}):", re.MULTILINE)


class MimicCxrJpgAdapter(Adapter):
    """MIMIC-CXR-JPG v2.0.0 (PhysioNet): JPEG chest radiographs, CheXpert/NegBio labels, reports."""

    name = "mimic-cxr-jpg"
    version = "2"  # 2: study_order, verify, split checks
    title = "MIMIC-CXR-JPG"
    dataset_name = "mimic-cxr-jpg"
    dataset_version = "2.0.0"
    source_release = "MIMIC-CXR-JPG v2.0.0 (PhysioNet)"
    source_url = "https://physionet.org/content/mimic-cxr-jpg/2.0.0/"
    tables = ("person", "note", "image_occurrence", "image", "samples")
    release_files = (f"{PREFIX}*.csv.gz", f"{PREFIX}*.csv")
    label_names = LABELS
    sensitive_attributes = ()
    option_specs = {
        "labels": OptionSpec(
            "chexpert", ("chexpert", "negbio"), "Which labeler's table fills label_* columns."
        ),
        "verify": OptionSpec("header", ("header", "decode"), VERIFY_HELP),
    }

    def discover(self) -> Iterator[WorkUnit]:
        """Read the metadata, split and label tables and yield units of about 256 images that
        never split a subject."""
        issues: list[tuple[str, str]] = []
        meta_name, meta_rows = self._table("metadata", METADATA_REQUIRED, issues)
        images: dict[str, dict[str, Any]] = {}
        for line, row in meta_rows:
            dicom_id = row["dicom_id"]
            if not dicom_id or not row["subject_id"] or not row["study_id"]:
                issues.append(
                    (
                        f"{meta_name}: line {line}",
                        "row without dicom_id, subject_id or study_id; skipped",
                    )
                )
                continue
            if dicom_id in images:
                issues.append((dicom_id, f"duplicate metadata row (line {line}); first kept"))
                continue
            row["issues"] = []
            images[dicom_id] = row
        self._join_split(images, issues)
        labels = self._labels(images, issues)
        by_subject: dict[str, list[dict[str, Any]]] = {}
        unlabeled: set[str] = set()
        for row in images.values():
            row["labels"] = labels.get(row["study_id"]) if labels is not None else None
            if labels is not None and row["labels"] is None and row["study_id"] not in unlabeled:
                unlabeled.add(row["study_id"])
                row["issues"].append(
                    (
                        f"s{row['study_id']}",
                        f"no row in the {self.options['labels']} label table; labels are null",
                    )
                )
            by_subject.setdefault(row["subject_id"], []).append(row)
        batch: list[dict[str, Any]] = []
        first = True
        for subject in sorted(by_subject, key=_int_key):
            batch.extend(
                sorted(by_subject[subject], key=lambda r: (_int_key(r["study_id"]), r["dicom_id"]))
            )
            if len(batch) >= IMAGES_PER_UNIT:
                yield self._unit(batch, issues if first else [])
                batch, first = [], False
        if batch or first:
            yield self._unit(batch, issues if first else [])

    def _find(self, kind: str) -> Path | None:
        """The table's file (``.csv.gz``, else ``.csv``), or None when the release lacks it."""
        for name in (f"{PREFIX}{kind}.csv.gz", f"{PREFIX}{kind}.csv"):
            path = self.source / name
            if path.is_file():
                return path
        return None

    def _table(
        self, kind: str, required: tuple[str, ...], issues: list[tuple[str, str]]
    ) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
        """Rows of a table with their line numbers. Ragged rows (a field count other than the
        header's) and rows whose required fields hold bytes that are not UTF-8 are quarantined;
        unexpected columns (ignored) and missing ones are reported. A file that cannot be read
        to its end (a truncated or damaged ``.gz``, a quote that never closes) is a
        ``SourceError`` naming it: its rows cannot be trusted to be complete."""
        path = self._find(kind)
        if path is None:
            raise SourceError(
                f"{self.source} has no {PREFIX}{kind}.csv.gz.",
                f"Point the command at the root of the {self.source_release} release.",
            )
        rows = read_table(
            path,
            lambda reader: self._parse_table(path.name, kind, required, reader, issues),
            f"Download {path.name} again from {self.source_url} and check it against the "
            "release's SHA256SUMS.txt.",
            issues,
        )
        return path.name, rows

    def _parse_table(
        self,
        name: str,
        kind: str,
        required: tuple[str, ...],
        reader: Iterator[list[str]],
        issues: list[tuple[str, str]],
    ) -> list[tuple[int, dict[str, Any]]]:
        header = [h.strip() for h in next(reader, None) or []]
        check_columns(
            name,
            header,
            required,
            TABLE_COLUMNS.get(kind, ()),
            self.name,
            "Check that the file is the release's own and not truncated or edited.",
            issues,
        )
        rows: list[tuple[int, dict[str, Any]]] = []
        for line, values in enumerate(reader, start=2):
            if not values:
                continue
            where = f"{name}: line {line}"
            if len(values) != len(header):
                issues.append(ragged_issue(name, line, len(values), len(header)))
                continue
            row = {k: v.strip() for k, v in zip(header, values, strict=True)}
            bad = [k for k, v in row.items() if "\ufffd" in v]
            if any(k in required for k in bad):
                issues.append(
                    (where, f"{', '.join(bad)} not valid UTF-8; row skipped"),
                )
                continue
            if bad:
                issues.append(
                    (where, f"{', '.join(bad)} not valid UTF-8 (bytes replaced); row kept")
                )
            rows.append((line, row))
        return rows

    def _join_split(self, images: dict[str, dict[str, Any]], issues: list[tuple[str, str]]) -> None:
        if self._find("split") is None:
            issues.append((f"{PREFIX}split.csv.gz", "split table missing; split is null"))
            return
        name, rows = self._table("split", ("dicom_id", "split"), issues)
        first_line: dict[str, int] = {}
        respelled: dict[str, int] = {}
        for line, row in rows:
            raw = row["split"]
            split = normalise_split(raw, SPLIT_NAMES)
            if split is not None and raw != split:
                respelled[raw] = respelled.get(raw, 0) + 1
            image = images.get(row["dicom_id"])
            if image is None:
                issues.append(
                    (
                        f"{name}: line {line} ({row['dicom_id']})",
                        "split row for an image not in the metadata; ignored",
                    )
                )
            elif "split" not in image:
                image["split"] = split
                first_line[row["dicom_id"]] = line
                if split is None:
                    image["issues"].append(
                        (row["dicom_id"], bad_split_reason(raw, SPLITS, f"in {name} (line {line})"))
                    )
            else:
                same = split == image["split"]
                issues.append(
                    (
                        row["dicom_id"],
                        f"{'duplicate' if same else 'conflicting'} split row in {name} (line "
                        f"{line}{'' if same else ', another split'}); line "
                        f"{first_line[row['dicom_id']]} kept",
                    )
                )
        issues.extend(respelled_issues(name, respelled, SPLIT_NAMES))
        by_subject: dict[str, set[str]] = {}
        for image in images.values():
            if "split" not in image:
                image["split"] = None
                image["issues"].append((image["dicom_id"], f"no row in {name}; split is null"))
            elif image["split"] is not None:
                by_subject.setdefault(image["subject_id"], set()).add(image["split"])
        for subject, splits in by_subject.items():
            if len(splits) > 1:
                issues.append((f"p{subject}", mixed_split_reason("subject", splits, SPLITS, name)))

    def _labels(
        self, images: dict[str, dict[str, Any]], issues: list[tuple[str, str]]
    ) -> dict[str, list[float | None]] | None:
        """Labels by study; None when the label table is missing."""
        which = self.options["labels"]
        if self._find(which) is None:
            issues.append((f"{PREFIX}{which}.csv.gz", "label table missing; every label is null"))
            return None
        name, rows = self._table(which, ("subject_id", "study_id"), issues)
        studies = {r["study_id"] for r in images.values()}
        out: dict[str, list[float | None]] = {}
        for line, row in rows:
            study = row["study_id"]
            if study not in studies:
                issues.append(
                    (
                        f"{name}: line {line} (s{study})",
                        "label row for a study without images; ignored",
                    )
                )
                continue
            if study in out:
                issues.append(
                    (f"s{study}", f"duplicate label row in {name} (line {line}); first kept")
                )
                continue
            values: list[float | None] = []
            for label in LABELS:
                raw = row.get(label, "")
                try:
                    v = float(raw) if raw != "" else None
                except ValueError:
                    issues.append(
                        (f"s{study}", f"label {label} is not a number in {name}; set to null")
                    )
                    v = None
                if v is not None and v not in (1.0, 0.0, -1.0):
                    issues.append(
                        (
                            f"s{study}",
                            f"label {label} has a value other than 1, 0, -1 or blank; set to null",
                        )
                    )
                    v = None
                values.append(v)
            out[study] = values
        return out

    def _unit(self, rows: list[dict[str, Any]], issues: list[tuple[str, str]]) -> WorkUnit:
        digest = hashlib.sha256()
        for row in rows:
            rel = _image_rel(row)
            try:
                st = os.stat(self.source / rel)
                digest.update(f"{rel}:{st.st_size}:{st.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{rel}:missing\n".encode())
        payload = {"rows": rows, "issues": issues}
        digest.update(json.dumps(payload, sort_keys=True).encode())
        digest.update(json.dumps(self.options, sort_keys=True).encode())
        key = f"p{rows[0]['subject_id']}" if rows else "empty"
        return WorkUnit(key, payload, digest.hexdigest())

    def convert(self, unit: WorkUnit) -> UnitResult:
        """Map one batch of images (whole subjects) to rows of every table."""
        result = UnitResult()
        for item, reason in unit.payload["issues"]:
            result.skip(item, reason)
        tables: dict[str, list[dict[str, Any]]] = {t: [] for t in self.tables}
        persons: set[str] = set()
        notes: dict[str, int | None] = {}
        orders = study_orders(unit.payload["rows"])
        for row in unit.payload["rows"]:
            subject, study = row["subject_id"], row["study_id"]
            for item, reason in row["issues"]:
                result.skip(item, reason)
            try:
                if subject not in persons:
                    persons.add(subject)
                    tables["person"].append(self._person(subject))
                if study not in notes:
                    notes[study] = self._note(row, result, tables)
                self._image(row, notes[study], orders.get((subject, study)), result, tables)
            except CorruptImage as exc:
                result.skip(_image_rel(row), exc.message, exc)
            except Exception as exc:
                result.skip(
                    _image_rel(row), f"image could not be converted ({type(exc).__name__})", exc
                )
        for name, table_rows in tables.items():
            if table_rows:
                extra = SAMPLES_EXTRA if name == "samples" else {}
                result.tables[name] = typed_table(name, table_rows, extra)
        return result

    def _person(self, subject: str) -> dict[str, Any]:
        deid = self.deid
        return {
            "person_id": self.person_id(subject),
            "gender_concept_id": 0,
            "year_of_birth": None,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
            "person_source_value": deid.person_pseudonym(subject) if deid else subject,
        }

    def _study_date(self, row: dict[str, Any]) -> tuple[dt.date | None, dt.datetime | None]:
        text = row.get("StudyDate", "")
        try:
            day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except (ValueError, IndexError):
            return None, None
        shifted = self.shift_date(day, row["subject_id"])
        assert shifted is not None
        time_text = (row.get("StudyTime") or "").split(".")[0].zfill(6)
        try:
            moment = dt.datetime.combine(
                shifted, dt.time(int(time_text[:2]), int(time_text[2:4]), int(time_text[4:6]))
            )
        except ValueError:
            moment = None
        return shifted, moment

    def _note(
        self, row: dict[str, Any], result: UnitResult, tables: dict[str, list[dict[str, Any]]]
    ) -> int | None:
        subject, study = row["subject_id"], row["study_id"]
        path = self._report_path(subject, study)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            result.skip(f"s{study}.txt", f"report could not be read ({type(exc).__name__})", exc)
            return None
        try:
            raw = data.decode("utf-8-sig")  # a byte-order mark is not part of the text
        except UnicodeDecodeError:
            raw = data.decode("utf-8-sig", errors="replace")
            result.skip(
                f"s{study}.txt",
                "report has bytes that are not valid UTF-8 (replaced with U+FFFD); note kept",
            )
        text = self.clean_text(raw, subject, result) or ""
        day, moment = self._study_date(row)
        note_id = self.row_id("note", study)
        tables["note"].append(
            {
                "note_id": note_id,
                "person_id": self.person_id(subject),
                "note_date": day,
                "note_datetime": moment,
                "note_type_concept_id": EHR_TYPE_CONCEPT,
                "note_class_concept_id": 0,
                "note_title": "Radiology report",
                "note_text": text,
                "encoding_concept_id": UTF8_CONCEPT,
                "language_concept_id": ENGLISH_CONCEPT,
                "note_source_value": None if self.deid else f"s{study}",
                **split_sections(text),
            }
        )
        return note_id

    def _report_path(self, subject: str, study: str) -> Path | None:
        rel = Path("files") / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        for root in (self.source, self.source / "mimic-cxr-reports"):
            if (root / rel).is_file():
                return root / rel
        return None

    def _image(
        self,
        row: dict[str, Any],
        note_id: int | None,
        study_order: int | None,
        result: UnitResult,
        tables: dict[str, list[dict[str, Any]]],
    ) -> None:
        rel = _image_rel(row)
        path = self.source / rel
        if not path.is_file():
            result.skip(rel, "image file missing")
            return
        image = encoded_image(path.read_bytes(), verify=self.options["verify"] == "decode")
        subject, study, dicom_id = row["subject_id"], row["study_id"], row["dicom_id"]
        person_id = self.person_id(subject)
        image_id = self.row_id("image", dicom_id)
        occurrence_id = self.row_id("series", dicom_id)
        view = (row.get("ViewPosition") or "").upper() or None
        day, _ = self._study_date(row)
        image.update(
            image_id=image_id,
            image_occurrence_id=occurrence_id,
            person_id=person_id,
            view_position=view,
            local_path=None if self.deid else rel,
        )
        tables["image_occurrence"].append(
            {
                "image_occurrence_id": occurrence_id,
                "person_id": person_id,
                "image_occurrence_date": day,
                "image_study_uid": f"2.25.{self.row_id('study-uid', study)}",
                "image_series_uid": f"2.25.{self.row_id('series-uid', dicom_id)}",
                "modality_concept_id": 0,
                "local_path": None if self.deid else rel,
                "modality_source_value": None,
                "anatomic_site_source_value": "CHEST",
            }
        )
        tables["image"].append(image)
        labels = row.get("labels") or [None] * len(LABELS)
        tables["samples"].append(
            {
                "sample_id": image_id,
                "person_id": person_id,
                "split": row.get("split"),
                "image_id": image_id,
                "note_id": note_id,
                "view": "Frontal" if view in FRONTAL else "Lateral" if view in LATERAL else None,
                "view_position": view,
                "study_order": study_order,
                **{f"label_{n}": v for n, v in zip(LABELS, labels, strict=True)},
            }
        )

    @classmethod
    def synthesize(
        cls, dest: str | Path, n: int = 8, seed: int = 0, *, reports: bool = True
    ) -> Path:
        """Write a fake MIMIC-CXR-JPG v2.0.0 release for ``n`` patients in the exact layout
        (with MIMIC-CXR report files unless ``reports=False``)."""
        from meddata.adapters._synth_cxr import write_mimic_cxr_jpg

        return write_mimic_cxr_jpg(Path(dest), n=n, seed=seed, reports=reports)


def split_sections(text: str) -> dict[str, str | None]:
    """Section columns of a MIMIC-CXR report (``FINDINGS:``, ``IMPRESSION:``...); null when absent."""
    out: dict[str, str | None] = dict.fromkeys(NOTE_SECTIONS)
    # every heading ends the section before it; only the known ones fill a column
    matches = list(_HEADING.finditer(text))
    for m, nxt in zip(matches, [*matches[1:], None], strict=True):
        column = SECTION_HEADINGS.get(m.group(1).strip())
        if column is None:
            continue
        body = text[m.end() : nxt.start() if nxt else len(text)].strip()
        if body and out[column] is None:
            out[column] = body
    return out


def study_orders(rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Each (subject, study)'s rank in time among the subject's studies (1 = first), by its earliest
    (StudyDate, StudyTime) over its images; equal times share a rank, and studies without a valid
    StudyDate have none. ``rows`` must hold all of each subject's images (a unit does)."""
    when: dict[str, dict[str, tuple[dt.date, float]]] = {}
    for row in rows:
        text = row.get("StudyDate") or ""
        try:
            day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            continue
        try:
            clock = float(row.get("StudyTime") or 0.0)  # HHMMSS.fff, leading zeros dropped
        except ValueError:
            clock = 0.0
        if not math.isfinite(clock):
            clock = 0.0
        studies = when.setdefault(row["subject_id"], {})
        key = (day, clock)
        studies[row["study_id"]] = min(studies.get(row["study_id"], key), key)
    out: dict[tuple[str, str], int] = {}
    for subject, studies in when.items():
        ranks = {key: n for n, key in enumerate(sorted(set(studies.values())), start=1)}
        out.update(((subject, study), ranks[key]) for study, key in studies.items())
    return out


def _image_rel(row: dict[str, Any]) -> str:
    subject = row["subject_id"]
    return f"files/p{subject[:2]}/p{subject}/s{row['study_id']}/{row['dicom_id']}.jpg"


def _int_key(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (1 << 62, value)
