"""``chexpert-plus``: the CheXpert Plus release (Stanford AIMI, 2024) → ``person``,
``observation``, ``note``, ``note_nlp``, ``image_occurrence``, ``image`` and ``samples``.

Source layout (SOURCE_LAYOUTS.md)::

    df_chexpert_plus_240401.csv                  27 columns, one row per image
    PNG/{train,valid}/patientNNNNN/studyN/viewN_{frontal,lateral}.png
    DICOM/{train,valid}/patientNNNNN/studyN/viewN_{frontal,lateral}.dcm   (extracted archives)
    chexbert_labels/{findings,impression,report}_fixed.json               JSON Lines
    radgraph-XL-annotations/section_{findings,impression}.json            one JSON array each

Mapping:

* ``person``: one per ``deid_patient_id``; sex → OMOP gender (8507/8532/8551), race and
  ethnicity → OMOP concepts where they map (else 0), originals in ``*_source_value``. The release
  has no dates, so ``year_of_birth`` stays null (never invented).
* ``observation``: ``insurance_type``, ``interpreter_needed``, ``recent_bmi`` and ``deceased``
  per report, with their source values (concept 0: no standard mapping is asserted).
* ``note``: one per report (``deid_patient_id``, ``patient_report_date_order``, or the study
  folder when the order is empty; rows of one report with different text are quarantined and
  their images kept without a note): full text plus
  one column per section (all 11 ``section_*`` columns of the CSV). ``note_date`` is null.
* ``note_nlp``: one row per RadGraph-XL entity with its label, certainty (``term_exists``,
  ``term_modifiers``), inclusive token span, character offsets into the stored ``note_text`` and
  relations (a JSON array of ``[relation, target note_nlp_id]``).
* ``image_occurrence`` + ``image``: one series per image. PNG bytes are kept as-is (codec
  ``png``). By default (``-O verify=header``) only the header and chunk CRCs are checked, pixels
  are not decoded; ``-O verify=decode`` decodes every image strictly (see ``verify_image``) and
  quarantines those that fail. With ``-O images=dicom`` the DICOM files are decoded and stored
  losslessly (zstd), whatever ``verify`` says.
* ``samples``: one per image with the 14 CheXbert labels as ``label_<Name>`` (1, 0, -1, null kept
  distinct), ``view`` (Frontal/Lateral), ``view_position`` (AP/PA/LL...), the note, the
  release's ``split``, the sensitive attributes and two extension columns: ``age`` (int32, whole
  years as published; under de-identification every age over 89 is 90, as HIPAA Safe Harbor
  requires) and ``study_order`` (int32, ``patient_report_date_order``: the report's rank in time
  among the patient's reports, 1 = first; an ordinal, not a date, so it is kept under
  de-identification, where ``note_date`` is null and ``note_source_value`` too). An age that is
  not a number from 0 to 130, or an order that is not a whole number from 1, is null and
  quarantined (the value is not shown); ``age_group`` is then ``Unknown``.

Unconfirmed details, both variants handled:

* the image tree is ``PNG/<path>`` or ``<path>`` directly under the root; the CSV's ``.jpg``
  suffix is mapped to the ``.png`` file present, and a real ``.jpg`` file is kept as ``jpeg``
  (the codec is taken from the file's magic bytes);
* the DICOM tree is ``DICOM/<path_to_dcm>`` or ``<path_to_dcm>``; the chunked archives must be
  extracted first;
* a RadGraph element is ``{"0": record}`` or the record itself; v1 labels (``OBS-DP``…) and XL
  labels (``Observation::definitely present``) are both read;
* the main table may carry another date suffix (``df_chexpert_plus_*.csv``).

RadGraph alignment: upstream, the i-th element of ``section_<s>.json`` belongs to the i-th CSV row
(in CSV order, duplicates included) whose ``section_<s>`` has at least 2 words. Each element
carries its own text, so elements are paired with rows in that order by their text (ignoring
whitespace): a missing, extra or edited row or element loses only its own annotations, and the
pairing re-synchronises after it (``_radgraph.align_by_text``). A ragged CSV row keeps its place
(its entry, when it had one, is skipped). Rows left without an entry and entries left unused are
counted in the quarantine report (with the first CSV line numbers). Character offsets are searched
after the section's heading (``FINDINGS:``...); a malformed entity is quarantined and a report's
rows are kept only when the whole report converted.

De-identification (a key given to ``convert``): report text and sections go through
``clean_text``. Character offsets are always computed against the text actually stored, by
re-aligning the RadGraph tokens on it; a token that de-identification replaced cannot be found and
the entity's offsets are then null (``lexical_variant`` is then the de-identified token text).
``local_path`` and ``note_source_value`` are null under de-identification.

Splits: ``split`` is read case-insensitively (``Valid`` → ``valid``; ``validate``/``validation``/
``val`` are read as ``valid``), each such spelling reported once; a blank or unknown value leaves the
image's split null and is quarantined (the value is not shown), and a patient whose images are in
more than one split is reported (the official split then leaks that person).

Person: sex, race and ethnicity come from the patient's first row with a value; a patient whose
rows disagree on one of them is reported (the column and CSV lines, never the values).

Bad input is quarantined with the path or id and the kind of problem (never report text):
missing or corrupt image files, malformed ages and report orders, label rows for images not in
the CSV, duplicate CSV rows, ragged CSV lines, unexpected CSV columns (ignored), unaligned
RadGraph entries, malformed entities, blank or unknown split values, conflicting demographics
and lines that are not valid UTF-8. A
missing required column, or a CSV that cannot be parsed (a quote that never closes), is a
``SourceError`` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from meddata import demographics, tensor
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
from meddata.adapters._dicom_header import Header
from meddata.adapters._radgraph import (
    RADGRAPH_SECTIONS,
    align_tokens,
    join_radgraph,
    parse_radgraph_label,
    section_file,
    section_start,
    term_modifiers,
)
from meddata.deid.structured import cap_age
from meddata.errors import SourceError

CSV_NAME = "df_chexpert_plus_240401.csv"
COLUMNS = (
    "path_to_image",
    "path_to_dcm",
    "frontal_lateral",
    "ap_pa",
    "deid_patient_id",
    "patient_report_date_order",
    "report",
    "section_narrative",
    "section_clinical_history",
    "section_history",
    "section_comparison",
    "section_technique",
    "section_procedure_comments",
    "section_findings",
    "section_impression",
    "section_end_of_impression",
    "section_summary",
    "section_accession_number",
    "age",
    "sex",
    "race",
    "ethnicity",
    "interpreter_needed",
    "insurance_type",
    "recent_bmi",
    "deceased",
    "split",
)
REQUIRED = ("path_to_image", "deid_patient_id", "patient_report_date_order", "report", "split")
SECTIONS = tuple(c for c in COLUMNS if c.startswith("section_"))
LABEL_VALUES = (1.0, 0.0, -1.0)
OBSERVATION_FIELDS = ("insurance_type", "interpreter_needed", "recent_bmi", "deceased")
PERSON_FIELDS = ("sex", "race", "ethnicity")
# The release's split names, and the other spellings read as them (case-insensitively).
SPLITS = ("train", "valid", "test")
SPLIT_NAMES = {"train": "train", "valid": "valid", "test": "test", "validate": "valid"}
SPLIT_NAMES |= {"validation": "valid", "val": "valid"}
ROWS_PER_UNIT = 256
NLP_SYSTEM = "RadGraph-XL (CheXpert Plus release)"
SNIPPET_CONTEXT = 60
NOTE_EXTRA = {c: pa.large_string() for c in SECTIONS}
# Extension columns of samples: those shared with mimic-cxr-jpg, and age (only CheXpert Plus
# publishes it).
CHEXPERT_SAMPLES_EXTRA = {**SAMPLES_EXTRA, "age": pa.int32()}
MAX_AGE = 130  # an age above this (years) is not plausible: it is null and quarantined


class ChexpertPlusAdapter(Adapter):
    """CheXpert Plus (Stanford AIMI, 2024): chest radiographs, reports, CheXbert labels, RadGraph."""

    name = "chexpert-plus"
    version = "2"  # 2: age, study_order, verify, split checks
    title = "CheXpert Plus"
    dataset_name = "chexpert-plus"
    dataset_version = "1.0"
    source_release = "CheXpert Plus (Stanford AIMI, 2024)"
    source_url = (
        "https://stanfordaimi.azurewebsites.net/datasets/5158c524-d3ab-4e02-96e9-6ee9efc110a1"
    )
    tables = ("person", "observation", "note", "note_nlp", "image_occurrence", "image", "samples")
    release_files = (
        "df_chexpert_plus_*.csv",
        "chexbert_labels/*.json",
        "radgraph-XL-annotations/*.json",
    )
    label_names = LABELS
    sensitive_attributes = ("sex", "age_group", "race", "ethnicity", "insurance")
    option_specs = {
        "images": OptionSpec(
            "png",
            ("png", "dicom"),
            "Read the PNG images (kept as-is) or the DICOM files (decoded, zstd).",
        ),
        "labels": OptionSpec(
            "report",
            ("report", "findings", "impression"),
            "Which CheXbert label file fills label_* columns.",
        ),
        "verify": OptionSpec("header", ("header", "decode"), VERIFY_HELP),
    }

    # -- discover -----------------------------------------------------------------------------
    def discover(self) -> Iterator[WorkUnit]:
        """Read the CSV once, join the CheXbert labels and RadGraph entries to its rows, and yield
        units of about 256 rows that never split a patient."""
        csv_path = self._csv_path()
        stamp = self._stamp(csv_path.name)
        issues: list[tuple[str, str]] = []
        rows, raw_rows = self._read_csv(csv_path, issues)
        self._join_labels(rows, issues)
        join_radgraph(self.source, raw_rows, issues)
        image_root, dicom_root = self._image_roots()
        by_patient: dict[str, list[dict[str, Any]]] = {}
        for row in rows.values():
            by_patient.setdefault(row["deid_patient_id"], []).append(row)
        for patient, patient_rows in by_patient.items():
            splits = {r["split"] for r in patient_rows if r["split"] is not None}
            if len(splits) > 1:
                issues.append(
                    (patient, mixed_split_reason("patient", splits, SPLITS, csv_path.name))
                )
        batch: list[dict[str, Any]] = []
        first = True
        for patient_rows in by_patient.values():
            batch.extend(patient_rows)
            if len(batch) >= ROWS_PER_UNIT:
                yield self._unit(batch, issues if first else [], image_root, dicom_root, stamp)
                batch, first = [], False
        if batch or first:
            yield self._unit(batch, issues if first else [], image_root, dicom_root, stamp)

    def _csv_path(self) -> Path:
        path = self.source / CSV_NAME
        if path.is_file():
            return path
        others = sorted(self.source.glob("df_chexpert_plus_*.csv"))
        if others:
            return others[-1]
        raise SourceError(
            f"{self.source} has no {CSV_NAME}.",
            f"Point the command at the root of the {self.source_release} release (the folder "
            f"holding {CSV_NAME}, PNG/ and chexbert_labels/).",
        )

    def _read_csv(
        self, path: Path, issues: list[tuple[str, str]]
    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
        """Rows keyed by path_to_image (first kept) and every raw row in CSV order."""
        return read_table(
            path,
            lambda reader: self._parse_csv(path, reader, issues),
            f"Download {path.name} again from the {self.source_release} release.",
            issues,
        )

    def _parse_csv(
        self, path: Path, reader: Iterator[list[str]], issues: list[tuple[str, str]]
    ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
        respelled: dict[str, int] = {}
        header = next(reader, None)
        if header is None:
            raise SourceError(f"{path.name} is empty.", "Download the release again.")
        header = [h.strip() for h in header]
        check_columns(
            path.name,
            header,
            REQUIRED,
            COLUMNS,
            self.name,
            f"Expected the 27 columns of {CSV_NAME}; check that the file is not truncated or edited.",
            issues,
        )
        index = {c: header.index(c) for c in COLUMNS if c in header}
        rows: dict[str, dict[str, Any]] = {}
        raw: list[dict[str, Any]] = []
        for line, values in enumerate(reader, start=2):
            if not values:
                continue
            if len(values) != len(header):
                issues.append(ragged_issue(path.name, line, len(values), len(header)))
                # keep its place: RadGraph-XL entries are aligned by CSV position
                raw.append({**dict.fromkeys(COLUMNS), "line": line, "ragged": True})
                continue
            row: dict[str, Any] = {
                c: (values[i].strip() or None)
                if c not in SECTIONS and c != "report"
                else (values[i] or None)
                for c, i in index.items()
            }
            for c in COLUMNS:
                row.setdefault(c, None)
            row["line"] = line
            raw.append(row)
            item = row["path_to_image"] or f"{path.name}: line {line}"
            if not row["path_to_image"] or not row["deid_patient_id"]:
                issues.append((item, "row without path_to_image or deid_patient_id; skipped"))
                continue
            if any("\ufffd" in v for v in values):
                row.setdefault("issues", []).append(
                    (item, "text that is not valid UTF-8 (bytes replaced with U+FFFD)")
                )
            raw_split = row["split"]
            row["split"] = normalise_split(raw_split, SPLIT_NAMES)
            if row["split"] is None:
                row.setdefault("issues", []).append(
                    (item, bad_split_reason(raw_split, SPLITS, f"(line {line})"))
                )
            elif raw_split != row["split"]:
                respelled[raw_split] = respelled.get(raw_split, 0) + 1
            row["age_years"] = parse_age(row["age"])
            if row["age"] is not None and row["age_years"] is None:
                row.setdefault("issues", []).append(
                    (
                        item,
                        f"age (line {line}) is not a number of years from 0 to {MAX_AGE} "
                        "(not shown); age is null and age_group Unknown",
                    )
                )
            row["study_order"] = parse_order(row["patient_report_date_order"])
            if row["patient_report_date_order"] is not None and row["study_order"] is None:
                row.setdefault("issues", []).append(
                    (
                        item,
                        f"patient_report_date_order (line {line}) is not a whole number from 1 "
                        "(not shown); study_order is null",
                    )
                )
            if row["path_to_image"] in rows:
                rows[row["path_to_image"]].setdefault("issues", []).append(
                    (item, f"duplicate CSV row (line {line}) for this image; first row kept")
                )
                continue
            rows[row["path_to_image"]] = row
        issues.extend(respelled_issues(path.name, respelled, SPLIT_NAMES))
        return rows, raw

    def _join_labels(self, rows: dict[str, dict[str, Any]], issues: list[tuple[str, str]]) -> None:
        which = self.options["labels"]
        rel = f"chexbert_labels/{which}_fixed.json"
        path = self.source / rel
        if not path.is_file():
            issues.append((rel, "CheXbert label file missing; every label is null"))
            return
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            for n, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                invalid = "\ufffd" in text
                try:
                    obj = json.loads(text)
                    key = str(obj["path_to_image"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    issues.append(
                        (
                            f"{rel}: line {n}",
                            "not a JSON object with path_to_image"
                            + (" (bytes that are not valid UTF-8)" if invalid else "")
                            + "; skipped",
                        )
                    )
                    continue
                if invalid:
                    issues.append(
                        (
                            f"{rel}: line {n}",
                            "bytes that are not valid UTF-8 (replaced with U+FFFD); line kept",
                        )
                    )
                row = rows.get(key)
                if row is None:
                    issues.append(
                        (
                            f"{rel}: line {n} ({key})",
                            "label row for an image not in the CSV; ignored",
                        )
                    )
                    continue
                if "labels" in row:
                    row.setdefault("issues", []).append(
                        (key, f"duplicate row in {rel} (line {n}); first kept")
                    )
                    continue
                values: list[float | None] = []
                for name in LABELS:
                    v = obj.get(name)
                    if v is not None and v not in LABEL_VALUES:
                        row.setdefault("issues", []).append(
                            (
                                key,
                                f"label {name} has a value other than 1, 0, -1 or null in {rel}; set to null",
                            )
                        )
                        v = None
                    values.append(None if v is None else float(v))
                row["labels"] = values

    def _image_roots(self) -> tuple[Path, Path | None]:
        png = self.source / "PNG"
        image_root = png if png.is_dir() else self.source
        if self.options["images"] != "dicom":
            return image_root, None
        dicom = self.source / "DICOM"
        dicom_root = dicom if dicom.is_dir() else self.source
        if not any((dicom_root / s).is_dir() for s in ("train", "valid")):
            raise SourceError(
                f"-O images=dicom was asked but {self.source} has no extracted DICOM/ tree.",
                "Extract the release's DICOM archives into DICOM/ (DICOM/train/patient…), or use images=png.",
            )
        return image_root, dicom_root

    def _unit(
        self,
        rows: list[dict[str, Any]],
        issues: list[tuple[str, str]],
        image_root: Path,
        dicom_root: Path | None,
        stamp: str,
    ) -> WorkUnit:
        digest = hashlib.sha256()
        for row in rows:
            if dicom_root is not None:
                rel = row["path_to_dcm"]
                found = _find(dicom_root, self.source, [rel] if rel else [])
            else:
                rel = row["path_to_image"]
                found = _find(image_root, self.source, _png_candidates(rel))
            row["file"] = found[0] if found else None
            digest.update(f"{row['file']}:{found[1] if found else 'missing'}\n".encode())
        labels_present = (
            self.source / f"chexbert_labels/{self.options['labels']}_fixed.json"
        ).is_file()
        payload = {"rows": rows, "issues": issues, "labels_present": labels_present}
        # The payload derives from the CSV, label and RadGraph files: their sizes and mtimes,
        # the options and the rows' line numbers stand for it (cheaper than hashing it whole).
        digest.update(stamp.encode())
        digest.update(",".join(str(r["line"]) for r in rows).encode())
        digest.update(json.dumps(issues).encode())
        key = rows[0]["deid_patient_id"] if rows else "empty"
        return WorkUnit(key, payload, digest.hexdigest())

    def _stamp(self, csv_name: str) -> str:
        """Sizes and mtimes of the tables every unit derives from, plus the options."""
        parts = [json.dumps(self.options, sort_keys=True)]
        for rel in (
            csv_name,
            *(f"chexbert_labels/{w}_fixed.json" for w in ("findings", "impression", "report")),
            *(section_file(s) for s in RADGRAPH_SECTIONS),
        ):
            try:
                st = os.stat(self.source / rel)
                parts.append(f"{rel}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append(f"{rel}:missing")
        return "|".join(parts)

    # -- convert ------------------------------------------------------------------------------
    def convert(self, unit: WorkUnit) -> UnitResult:
        """Map one batch of CSV rows (whole patients) to rows of every table."""
        result = UnitResult()
        for item, reason in unit.payload["issues"]:
            result.skip(item, reason)
        rows: list[dict[str, Any]] = unit.payload["rows"]
        reports: dict[tuple[str, str], list[dict[str, Any]]] = {}
        by_patient: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_patient.setdefault(row["deid_patient_id"], []).append(row)
            # without a report order, the study folder identifies the report
            order = row["patient_report_date_order"] or (
                "study:" + row["path_to_image"].rsplit("/", 1)[0]
            )
            reports.setdefault((row["deid_patient_id"], order), []).append(row)
        tables: dict[str, list[dict[str, Any]]] = {t: [] for t in self.tables}
        persons: set[str] = set()
        for (patient, order), report_rows in reports.items():
            first = report_rows[0]
            if patient not in persons:
                persons.add(patient)
                try:
                    tables["person"].append(self._person(by_patient[patient], result))
                except Exception as exc:
                    result.skip(
                        patient, f"person could not be converted ({type(exc).__name__})", exc
                    )
            # a report's rows are kept only when the whole report converted
            part: dict[str, list[dict[str, Any]]] = {
                t: [] for t in ("note", "note_nlp", "observation")
            }
            try:
                note_id = self._note(patient, order, report_rows, result, part)
                self._observations(patient, order, first, part)
            except Exception as exc:
                result.skip(
                    f"{patient} report {order}",
                    f"report could not be converted ({type(exc).__name__})",
                    exc,
                )
                note_id = None
            else:
                for name, part_rows in part.items():
                    tables[name].extend(part_rows)
            for row in report_rows:
                for item, reason in row.get("issues", ()):
                    result.skip(item, reason)
                row_note = note_id
                if row is not first and row["report"] != first["report"]:
                    result.skip(
                        row["path_to_image"],
                        f"report text differs from line {first['line']}, which has the same "
                        "patient and report order; image kept without a note",
                    )
                    row_note = None
                try:
                    self._image(row, row_note, unit.payload["labels_present"], result, tables)
                except CorruptImage as exc:
                    result.skip(row["path_to_image"], exc.message, exc)
                except Exception as exc:
                    result.skip(
                        row["path_to_image"], f"image could not be read ({type(exc).__name__})", exc
                    )
        for name, table_rows in tables.items():
            if not table_rows:
                continue
            extra = (
                NOTE_EXTRA
                if name == "note"
                else CHEXPERT_SAMPLES_EXTRA
                if name == "samples"
                else {}
            )
            result.tables[name] = typed_table(name, table_rows, extra)
        return result

    def _person(self, rows: list[dict[str, Any]], result: UnitResult) -> dict[str, Any]:
        """The person of a patient's rows: each of sex, race and ethnicity from the first row
        with a value; rows that disagree are reported (column and lines, never the values)."""
        patient = rows[0]["deid_patient_id"]
        row: dict[str, Any] = {}
        for name in PERSON_FIELDS:
            given = [r for r in rows if r[name] is not None]
            row[name] = given[0][name] if given else None
            other = next(
                (r for r in given if r[name].casefold() != given[0][name].casefold()), None
            )
            if other is not None:
                result.skip(
                    patient,
                    f"{name} differs between the patient's CSV rows (lines {given[0]['line']} "
                    f"and {other['line']}); the value of line {given[0]['line']} is used for "
                    "person (samples keep each row's own)",
                )
        deid = self.deid
        return {
            "person_id": self.person_id(patient),
            "gender_concept_id": demographics.gender_concept(row["sex"]),
            "year_of_birth": None,
            "race_concept_id": demographics.race_concept(row["race"]),
            "ethnicity_concept_id": demographics.ethnicity_concept(row["ethnicity"]),
            "person_source_value": deid.person_pseudonym(patient) if deid else patient,
            "gender_source_value": row["sex"],
            "race_source_value": row["race"],
            "ethnicity_source_value": row["ethnicity"],
        }

    def _observations(
        self, patient: str, order: str, row: dict[str, Any], tables: dict[str, list[dict[str, Any]]]
    ) -> None:
        person_id = self.person_id(patient)
        for field_name in OBSERVATION_FIELDS:
            value = row[field_name]
            if value is None:
                continue
            number = _float(value) if field_name == "recent_bmi" else None
            tables["observation"].append(
                {
                    "observation_id": self.row_id("observation", patient, order, field_name),
                    "person_id": person_id,
                    "observation_concept_id": 0,
                    "observation_date": None,
                    "observation_type_concept_id": EHR_TYPE_CONCEPT,
                    "value_as_number": number,
                    "value_as_string": None if number is not None else value,
                    "observation_source_value": field_name,
                    "value_source_value": value,
                }
            )

    def _note(
        self,
        patient: str,
        order: str,
        rows: list[dict[str, Any]],
        result: UnitResult,
        tables: dict[str, list[dict[str, Any]]],
    ) -> int | None:
        first = rows[0]
        if first["report"] is None and not any(first[s] for s in SECTIONS):
            return None
        note_id = self.row_id("note", patient, order)
        names = self.names_in(
            first["report"]
        )  # a name the full report reveals is PHI in every section
        text = self.clean_text(first["report"], patient, result) or ""
        sections = {s: self.clean_text(first[s], patient, result, names) for s in SECTIONS}
        tables["note"].append(
            {
                "note_id": note_id,
                "person_id": self.person_id(patient),
                "note_date": None,
                "note_type_concept_id": EHR_TYPE_CONCEPT,
                "note_class_concept_id": 0,
                "note_title": "Radiology report",
                "note_text": text,
                "encoding_concept_id": UTF8_CONCEPT,
                "language_concept_id": ENGLISH_CONCEPT,
                "note_source_value": None if self.deid else f"{patient}/report{order}",
                **sections,
            }
        )
        for section in RADGRAPH_SECTIONS:
            graph = next(
                (r["radgraph"][section] for r in rows if section in r.get("radgraph", {})), None
            )
            if graph is not None:
                stored = sections[f"section_{section}"]
                tables["note_nlp"].extend(
                    self._entities(note_id, patient, order, section, graph, text, stored, result)
                )
        return note_id

    def _entities(
        self,
        note_id: int,
        patient: str,
        order: str,
        section: str,
        graph: dict[str, Any],
        text: str,
        section_text: str | None,
        result: UnitResult,
    ) -> list[dict[str, Any]]:
        tokens = str(graph["text"]).split()
        spans = align_tokens(tokens, text, section_start(text, section, section_text))
        entities: dict[str, dict[str, Any]] = {}
        for key, entity in graph["entities"].items():
            if (
                isinstance(entity, dict)
                and all(
                    isinstance(entity.get(k), int) and not isinstance(entity.get(k), bool)
                    for k in ("start_ix", "end_ix")
                )
                and isinstance(entity.get("relations", []), list | tuple)
            ):
                entities[str(key)] = entity
            else:
                result.skip(
                    f"{patient} report {order} {section} entity {key}",
                    "RadGraph-XL entity is not an object with integer start_ix/end_ix and a "
                    "relation list; entity skipped",
                )
        ids = {key: self.row_id("note_nlp", patient, order, section, key) for key in entities}
        out = []
        for key, entity in sorted(entities.items(), key=lambda kv: _int(kv[0])):
            start, end = entity["start_ix"], entity["end_ix"]
            label = str(entity.get("label", ""))
            kind, certainty = parse_radgraph_label(label)
            char_start = char_end = None
            if 0 <= start <= end < len(spans) and all(
                spans[i] is not None for i in range(start, end + 1)
            ):
                char_start, char_end = spans[start][0], spans[end][1]  # type: ignore[index]
            raw_tokens = str(entity.get("tokens", ""))
            if self.deid is None:
                lexical = raw_tokens
            elif char_start is not None and char_end is not None:
                lexical = text[char_start:char_end]
            else:
                lexical = self.clean_text(raw_tokens, patient, result) or ""
            relations = [
                [str(rel[0]), ids[str(rel[1])]]
                for rel in entity.get("relations", ())
                if isinstance(rel, list | tuple) and len(rel) == 2 and str(rel[1]) in ids
            ]
            snippet = None
            if char_start is not None and char_end is not None:
                snippet = text[max(0, char_start - SNIPPET_CONTEXT) : char_end + SNIPPET_CONTEXT][
                    :250
                ]
            out.append(
                {
                    "note_nlp_id": ids[key],
                    "note_id": note_id,
                    "section_concept_id": 0,
                    "snippet": snippet,
                    "offset": None if char_start is None else str(char_start),
                    "lexical_variant": lexical[:250],
                    "note_nlp_concept_id": 0,
                    "nlp_system": NLP_SYSTEM,
                    "nlp_date": None,
                    "term_exists": None
                    if certainty is None
                    else ("Y" if certainty == "definitely present" else "N"),
                    "term_modifiers": term_modifiers(kind, certainty),
                    "entity_label": label,
                    "token_start": start if start >= 0 else None,
                    "token_end": end if end >= 0 else None,
                    "char_start": char_start,
                    "char_end": char_end,
                    "section": section,
                    "relations": json.dumps(relations),
                }
            )
        return out

    def _image(
        self,
        row: dict[str, Any],
        note_id: int | None,
        labels_present: bool,
        result: UnitResult,
        tables: dict[str, list[dict[str, Any]]],
    ) -> None:
        item = row["path_to_image"]
        patient = row["deid_patient_id"]
        if row["file"] is None:
            where = (
                f"DICOM/{row['path_to_dcm']}"
                if self.options["images"] == "dicom"
                else f"PNG/{_png_candidates(item)[0]}"
            )
            result.skip(item, f"image file missing (looked for {where})")
            return
        path = self.source / row["file"]
        person_id = self.person_id(patient)
        image_id = self.row_id("image", item)
        occurrence_id = self.row_id("series", item)
        study_key = item.rsplit("/", 1)[0]
        study_uid = f"2.25.{self.row_id('study-uid', study_key)}"
        series_uid = f"2.25.{self.row_id('series-uid', item)}"
        view_position = (row["ap_pa"] or "").upper() or None
        image: dict[str, Any]
        modality = None
        if self.options["images"] == "dicom":
            image, study_uid, series_uid, modality = self._dicom_image(
                path, patient, study_uid, series_uid
            )
            view_position = view_position or image.get("view_position")
        else:
            data = path.read_bytes()
            image = encoded_image(data, verify=self.options["verify"] == "decode")
        image.update(
            image_id=image_id,
            image_occurrence_id=occurrence_id,
            person_id=person_id,
            view_position=view_position,
            local_path=None if self.deid else row["file"],
        )
        tables["image_occurrence"].append(
            {
                "image_occurrence_id": occurrence_id,
                "person_id": person_id,
                "image_occurrence_date": None,
                "image_study_uid": study_uid,
                "image_series_uid": series_uid,
                "modality_concept_id": 0,
                "local_path": None if self.deid else row["file"],
                "modality_source_value": modality,
                "anatomic_site_source_value": "CHEST",
            }
        )
        tables["image"].append(image)
        labels = row.get("labels") or [None] * len(LABELS)
        if "labels" not in row and labels_present:
            result.skip(item, "no CheXbert label row for this image; its labels are null")
        age = row["age_years"]
        tables["samples"].append(
            {
                "sample_id": image_id,
                "person_id": person_id,
                "split": row["split"],
                "image_id": image_id,
                "note_id": note_id,
                "view": row["frontal_lateral"],
                "view_position": view_position,
                "study_order": row["study_order"],
                "sex": demographics.sex_label(row["sex"]),
                "age_group": demographics.age_group(age),
                "age": cap_age(age) if self.deid is not None else age,
                "race": row["race"],
                "ethnicity": row["ethnicity"],
                "insurance": row["insurance_type"],
                **{f"label_{n}": v for n, v in zip(LABELS, labels, strict=True)},
            }
        )

    def _dicom_image(
        self, path: Path, patient: str, study_uid: str, series_uid: str
    ) -> tuple[dict[str, Any], str, str, str | None]:
        import pydicom

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warnings can quote header values
            try:
                ds = pydicom.dcmread(path)
                pixels = np.asarray(ds.pixel_array)
            except Exception as exc:
                raise CorruptImage(
                    f"DICOM file could not be read or decoded ({type(exc).__name__})"
                ) from exc
            if self.deid is not None:
                self.deid.dicom(ds, patient)
        h = Header(ds)
        image = {
            "pixels": tensor.encode(pixels, "zstd"),
            "sop_instance_uid": h.text("SOPInstanceUID"),
            "rows": int(pixels.shape[0]),
            "columns": int(pixels.shape[1]),
            "frames": 1,
            "samples_per_pixel": h.integer("SamplesPerPixel") or 1,
            "photometric_interpretation": h.text("PhotometricInterpretation"),
            "bits_stored": h.integer("BitsStored"),
            "pixel_spacing": h.numbers("PixelSpacing") or h.numbers("ImagerPixelSpacing"),
            "rescale_slope": h.number("RescaleSlope"),
            "rescale_intercept": h.number("RescaleIntercept"),
            "view_position": h.text("ViewPosition"),
            "source_codec": str(ds.file_meta.get("TransferSyntaxUID", "") or "") or None,
        }
        study = h.text("StudyInstanceUID") or study_uid
        series = h.text("SeriesInstanceUID") or series_uid
        return image, study, series, h.text("Modality")

    @classmethod
    def synthesize(cls, dest: str | Path, n: int = 8, seed: int = 0, *, dicom: bool = True) -> Path:
        """Write a fake CheXpert Plus release for ``n`` patients (PNG, DICOM unless ``dicom=False``,
        CheXbert labels, RadGraph-XL) in the exact release layout."""
        from meddata.adapters._synth_cxr import write_chexpert_plus

        return write_chexpert_plus(Path(dest), n=n, seed=seed, dicom=dicom)


def _png_candidates(rel: str) -> list[str]:
    stem = rel[:-4] if rel.lower().endswith((".jpg", ".png")) else rel
    return [stem + ".png", rel] if rel != stem + ".png" else [rel]


def _find(root: Path, source: Path, candidates: list[str]) -> tuple[str, str] | None:
    """(path relative to ``source``, "size:mtime") of the first candidate present under ``root``."""
    for rel in candidates:
        full = root / rel
        try:
            st = os.stat(full)
        except OSError:
            continue
        return full.relative_to(source).as_posix(), f"{st.st_size}:{st.st_mtime_ns}"
    return None


def parse_age(value: str | None) -> int | None:
    """Whole years from a CSV age (``67``, ``67.0``); None when blank, not a finite number or
    outside 0..``MAX_AGE``."""
    number = _float(value)
    if number is None or not 0 <= number <= MAX_AGE:  # NaN fails both comparisons
        return None
    return int(number)


def parse_order(value: str | None) -> int | None:
    """A report order (``3``, ``3.0``) as an int; None when blank or not a whole number >= 1."""
    number = _float(value)
    if number is None or not 1 <= number < 2**31 or number != int(number):
        return None
    return int(number)


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
