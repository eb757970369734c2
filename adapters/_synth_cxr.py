"""Synthetic chest X-ray releases for tests, the quickstart and benchmarks.

``write_chexpert_plus`` writes a fake CheXpert Plus release and ``write_mimic_cxr_jpg`` a fake
MIMIC-CXR-JPG release, each in exactly the upstream layout (see SOURCE_LAYOUTS.md): several
patients with several studies and views, chest-like grayscale images at a few sizes, reports with
the real headings (some sections missing, some non-ASCII text, some PHI-like text: names, dates,
accession numbers, phone numbers), labels with all four values (1, 0, -1, blank; ``No Finding``
1 only without a positive or uncertain pathology, as the labelers give it), MIMIC ViewPosition
values as upstream (PA, AP, LATERAL, LL and some blank) and, for CheXpert Plus, CheXbert label
files and RadGraph-XL annotations aligned as upstream.

Speed: a pool of distinct images is encoded once and its bytes are reused round-robin, so
thousands of images are written in seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np

from meddata.adapters._cxr_release import LABELS
from meddata.adapters._synth_dicom import FIRST, LAST, chest_like
from meddata.adapters.chexpert_plus import COLUMNS as CHEXPERT_COLUMNS
from meddata.adapters.mimic_cxr_jpg import LABEL_COLUMNS as MIMIC_LABEL_COLUMNS
from meddata.adapters.mimic_cxr_jpg import METADATA_COLUMNS as MIMIC_METADATA
from meddata.adapters.mimic_cxr_jpg import SPLIT_COLUMNS as MIMIC_SPLIT_COLUMNS

# Report headings in the order they appear, and the CSV column each one fills.
CHEXPERT_HEADINGS = (
    ("NARRATIVE:", "section_narrative"),
    ("CLINICAL HISTORY:", "section_clinical_history"),
    ("HISTORY:", "section_history"),
    ("COMPARISON:", "section_comparison"),
    ("TECHNIQUE:", "section_technique"),
    ("PROCEDURE COMMENTS:", "section_procedure_comments"),
    ("FINDINGS:", "section_findings"),
    ("IMPRESSION:", "section_impression"),
    ("END OF IMPRESSION:", "section_end_of_impression"),
    ("SUMMARY:", "section_summary"),
    ("ACCESSION NUMBER:", "section_accession_number"),
)
SIZES = ((320, 256), (256, 320), (320, 320), (384, 312))
FINDINGS = (
    "The lungs are clear. No pleural effusion or pneumothorax.",
    "Heart size is normal. The cardiomediastinal silhouette is within normal limits.",
    "There is a small left pleural effusion with adjacent atelectasis in the left lower lobe.",
    "Patchy opacity in the right upper lobe, possibly pneumonia.",
    "Endotracheal tube terminates 4 cm above the carina. Mild pulmonary edema.",
    "Stable cardiomegaly. No focal consolidation.",
    "Possible small right pneumothorax. Healed rib fracture on the left.",
    "Enteric tube courses below the diaphragm. Lungs are well expanded.",
    "Moderate cardiomegaly with vascular congestion and bilateral pleural effusions.",
    "Nodular opacity in the right lower lobe may represent a lung lesion.",
)
IMPRESSIONS = (
    "No acute cardiopulmonary process.",
    "Small left pleural effusion.",
    "Right upper lobe opacity, possibly pneumonia.",
    "Mild pulmonary edema. Support devices in standard position.",
    "Possible small right pneumothorax.",
    "1. Cardiomegaly.\n2. No pneumothorax.",
    "Unchanged nodular opacity; recommend CT for further evaluation.",
)
HISTORIES = (
    "Shortness of breath.",
    "Fever and cough, evaluate for pneumonia.",
    "Chest pain.",
    "Post-operative, line placement.",
    "Dyspnée on exertion, patient from Zürich – evaluate for edema.",
)
# RadGraph-XL entity vocabulary (longest phrases are matched first).
ANATOMY = (
    ("left", "lower", "lobe"),
    ("right", "lower", "lobe"),
    ("right", "upper", "lobe"),
    ("cardiomediastinal", "silhouette"),
    ("lungs",),
    ("lung",),
    ("pleural",),
    ("heart",),
    ("carina",),
    ("diaphragm",),
    ("rib",),
    ("pulmonary",),
    ("vascular",),
    ("right",),
    ("left",),
)
OBSERVATION = (
    ("endotracheal", "tube"),
    ("enteric", "tube"),
    ("clear",),
    ("effusion",),
    ("effusions",),
    ("pneumothorax",),
    ("normal",),
    ("atelectasis",),
    ("opacity",),
    ("pneumonia",),
    ("edema",),
    ("cardiomegaly",),
    ("consolidation",),
    ("fracture",),
    ("congestion",),
    ("lesion",),
    ("process",),
    ("expanded",),
    ("size",),
)
NEGATIONS = {"no", "without", "not"}
HEDGES = {"possible", "possibly", "may", "likely", "probable"}
_TOKEN = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


def radgraph_tokens(text: str) -> list[str]:
    """Tokenise like RadGraph: words, and punctuation as tokens of their own."""
    return _TOKEN.findall(text)


def radgraph_record(text: str, split: str) -> dict[str, Any]:
    """A RadGraph-XL record for ``text``: tokenised text, entities with inclusive token spans,
    labels ``<Type>::<certainty>`` and ``located_at`` / ``modify`` relations."""
    tokens = radgraph_tokens(text)
    lower = [t.lower() for t in tokens]
    entities: dict[str, dict[str, Any]] = {}
    spans: list[tuple[int, int, str, str]] = []
    i = 0
    sentence_start = 0
    while i < len(tokens):
        if tokens[i] == ".":
            sentence_start = i + 1
        match = None
        for kind, phrases in (("Anatomy", ANATOMY), ("Observation", OBSERVATION)):
            for phrase in phrases:
                if tuple(lower[i : i + len(phrase)]) == phrase:
                    match = (kind, len(phrase))
                    break
            if match:
                break
        if match is None:
            i += 1
            continue
        kind, length = match
        before = set(lower[sentence_start:i])
        if kind == "Anatomy":
            certainty = "definitely present"
        elif before & NEGATIONS:
            certainty = "definitely absent"
        elif before & HEDGES:
            certainty = "uncertain"
        else:
            certainty = "definitely present"
        spans.append((i, i + length - 1, kind, certainty))
        i += length
    for n, (start, end, kind, certainty) in enumerate(spans, 1):
        entities[str(n)] = {
            "tokens": " ".join(tokens[start : end + 1]),
            "label": f"{kind}::{certainty}",
            "start_ix": start,
            "end_ix": end,
            "relations": [],
        }
    # Observations are located at the nearest anatomy before them in the same sentence.
    for n, (start, _end, kind, _c) in enumerate(spans, 1):
        if kind != "Observation":
            continue
        for m in range(n - 1, 0, -1):
            s2, _e2, k2, _ = spans[m - 1]
            if "." in tokens[s2:start]:
                break
            if k2 == "Anatomy":
                entities[str(n)]["relations"].append(["located_at", str(m)])
                break
    return {
        "0": {
            "text": " ".join(tokens),
            "entities": entities,
            "data_source": "CheXpert",
            "data_split": split,
        }
    }


def _image_pool(rng: np.random.Generator, per_size: int) -> list[tuple[bytes, tuple[int, int]]]:
    from PIL import Image

    pool = []
    for rows, cols in SIZES:
        for _ in range(per_size):
            arr = (chest_like(rng, rows, cols, bits=8)).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
            pool.append((buf.getvalue(), (rows, cols)))
    return pool


def _phi_sentence(rng: random.Random, day: dt.date) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return rng.choice(
        (
            f"Findings discussed with Dr. {first} {last} by telephone on {day:%m/%d/%Y} at 10:{rng.randint(10, 59)}.",
            f"Results communicated to {first} {last}, RN, at (650) 723-{rng.randint(1000, 9999)} on {day:%B %d, %Y}.",
            f"Comparison with outside study from St. Mary's Hospital dated {day:%m/%d/%y}.",
        )
    )


def _report(
    rng: random.Random, split: str, day: dt.date, phi: bool, views: int
) -> dict[str, str | None]:
    """One report: the section texts (None when absent) and the full text with headings."""
    sections: dict[str, str | None] = dict.fromkeys((c for _, c in CHEXPERT_HEADINGS), None)
    exam = "CHEST, 2 VIEWS" if views > 1 else "CHEST, 1 VIEW"
    sections["section_narrative"] = f"RADIOGRAPHIC EXAMINATION OF THE {exam}"
    if rng.random() < 0.7:
        key = "section_clinical_history" if rng.random() < 0.5 else "section_history"
        sections[key] = rng.choice(HISTORIES)
    if rng.random() < 0.6:
        sections["section_comparison"] = rng.choice(
            ("None.", "Prior radiograph.", "Chest radiograph from prior visit.")
        )
    if rng.random() < 0.3:
        sections["section_technique"] = (
            f"Frontal{' and lateral' if views > 1 else ''} views of the chest."
        )
    if rng.random() < 0.1:
        sections["section_procedure_comments"] = "Portable technique limits evaluation."
    if rng.random() < 0.85:
        sections["section_findings"] = " ".join(rng.sample(FINDINGS, k=rng.randint(1, 2)))
    elif rng.random() < 0.5:
        sections["section_findings"] = "Unremarkable."  # one word: RadGraph skips it
    impression = rng.choice(IMPRESSIONS)
    if phi:
        impression += " " + _phi_sentence(rng, day)
        sections["section_accession_number"] = f"{rng.randint(10_000_000, 99_999_999)}"
    sections["section_impression"] = impression
    if rng.random() < 0.5:
        sections["section_end_of_impression"] = (
            "I have personally reviewed the images and agree with the report."
        )
    if rng.random() < 0.4:
        sections["section_summary"] = rng.choice(
            ("1 - NORMAL", "2 - ABNORMAL, PREVIOUSLY REPORTED", "4 - POSSIBLE CONSOLIDATION")
        )
    parts = []
    for heading, col in CHEXPERT_HEADINGS:
        if sections[col] is not None:
            parts.append(f"{heading} {sections[col]}")
    sections["report"] = "\n\n".join(parts)
    return sections


def labeler_values(rng: random.Random, names: tuple[str, ...]) -> dict[str, float | None]:
    """One study's labels as the CheXpert labeler and CheXbert give them: 1.0, 0.0, -1.0 or None
    (not mentioned) per observation, and ``No Finding`` 1.0 only when no pathology is positive
    or uncertain (``Support Devices`` is not a pathology), else None."""
    normal = rng.random() < 0.3
    values: dict[str, float | None] = {}
    for name in names:
        if name == "No Finding":
            continue
        if normal and name != "Support Devices":
            values[name] = rng.choices((0.0, None), weights=(1, 3))[0]
        else:
            values[name] = rng.choices((1.0, 0.0, -1.0, None), weights=(2, 3, 1, 4))[0]
    findings = any(v in (1.0, -1.0) for k, v in values.items() if k != "Support Devices")
    values["No Finding"] = None if findings else 1.0
    return {name: values[name] for name in names}


def _label_row(rng: random.Random, path: str) -> dict[str, Any]:
    return {"path_to_image": path, **labeler_values(rng, LABELS)}


def write_chexpert_plus(
    dest: Path, n: int = 8, seed: int = 0, *, dicom: bool = True, max_studies: int = 3
) -> Path:
    """Write a fake CheXpert Plus release for ``n`` patients under ``dest``.

    Layout: ``df_chexpert_plus_240401.csv`` (27 columns), ``PNG/{train,valid}/patientNNNNN/
    studyN/viewN_{frontal,lateral}.png`` (the CSV says ``.jpg``), ``DICOM/…/*.dcm`` when
    ``dicom``, ``chexbert_labels/{findings,impression,report}_fixed.json`` (JSON Lines) and
    ``radgraph-XL-annotations/section_{findings,impression}.json``.
    """
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    pool = _image_pool(nrng, per_size=3)
    rows: list[dict[str, Any]] = []
    for p in range(n):
        split = "valid" if p % 4 == 3 else "train"  # small samples get a valid split too
        pid = f"patient{seed * 10000 + p + 1:05d}"
        age = rng.choice((rng.randint(18, 95), rng.randint(18, 95), rng.randint(1, 17)))
        demo = {
            "sex": rng.choices(("Male", "Female", "Unknown"), weights=(48, 48, 4))[0],
            "race": rng.choice(
                (
                    "White",
                    "Black or African American",
                    "Asian",
                    "Other",
                    "Unknown",
                    "Patient Refused",
                    "Native Hawaiian or Other Pacific Islander",
                )
            ),
            "ethnicity": rng.choice(
                ("Non-Hispanic/Non-Latino", "Hispanic/Latino", "Unknown", "Patient Refused")
            ),
            "interpreter_needed": rng.choice(("No", "No", "Yes")),
            "insurance_type": rng.choice(("Private Insurance", "Medicare", "Medicaid", "Unknown")),
            "deceased": rng.choice(("No", "No", "Yes")),
        }
        day = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randint(0, 2000))
        for s in range(1, rng.randint(1, max_studies) + 1):
            views = rng.choice((1, 2, 2, 3))
            report = _report(
                rng, split, day + dt.timedelta(days=40 * s), phi=rng.random() < 0.3, views=views
            )
            bmi = "" if rng.random() < 0.3 else f"{rng.uniform(16, 42):.1f}"
            for v in range(1, views + 1):
                lateral = v > 1 and v == views and views > 1
                kind = "lateral" if lateral else "frontal"
                rel = f"{split}/{pid}/study{s}/view{v}_{kind}"
                row = {
                    "path_to_image": rel + ".jpg",
                    "path_to_dcm": rel + ".dcm",
                    "frontal_lateral": "Lateral" if lateral else "Frontal",
                    "ap_pa": "" if lateral else rng.choice(("AP", "PA")),
                    "deid_patient_id": pid,
                    "patient_report_date_order": str(s),
                    **{k: report[k] or "" for k in report},
                    "age": str(age + s // 3),
                    "recent_bmi": bmi,
                    "split": split,
                    **demo,
                }
                rows.append(row)
    # images
    for i, row in enumerate(rows):
        data, shape = pool[(i * 7 + seed) % len(pool)]
        png = dest / "PNG" / row["path_to_image"].replace(".jpg", ".png")
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(data)
        if dicom:
            _write_cxr_dicom(dest / "DICOM" / row["path_to_dcm"], row, data, nrng)
    with open(dest / "df_chexpert_plus_240401.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CHEXPERT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    labels = dest / "chexbert_labels"
    labels.mkdir(exist_ok=True)
    for which in ("findings", "impression", "report"):
        lrng = random.Random(f"{seed}-{which}")
        with open(labels / f"{which}_fixed.json", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(_label_row(lrng, row["path_to_image"])) + "\n")
    rg = dest / "radgraph-XL-annotations"
    rg.mkdir(exist_ok=True)
    for section in ("findings", "impression"):
        records = [
            radgraph_record(row[f"section_{section}"], row["split"])
            for row in rows
            if len(row[f"section_{section}"].split()) >= 2
        ]
        (rg / f"section_{section}.json").write_text(json.dumps(records), encoding="utf-8")
    return dest


def _write_cxr_dicom(
    path: Path, row: dict[str, Any], png: bytes, nrng: np.random.Generator
) -> None:
    """A CR DICOM holding the same picture as the PNG (12-bit), with de-identified-style headers."""
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    with Image.open(io.BytesIO(png)) as im:
        arr = (np.asarray(im).astype(np.uint16) * 16).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = row["deid_patient_id"]
    ds.PatientSex = {"Male": "M", "Female": "F"}.get(row["sex"], "O")
    # One StudyInstanceUID per study folder, as in a real release (views of a study share it).
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[path.parent.parent.name, path.parent.name])
    ds.SeriesInstanceUID = generate_uid()
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = row["ap_pa"] or "LL"
    ds.ImagerPixelSpacing = [0.139, 0.139]
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


# -- MIMIC-CXR-JPG -------------------------------------------------------------------------------
MIMIC_LABELS = tuple(sorted(LABELS))
# ViewPosition values as upstream (PA, AP, LATERAL, LL... and blank for some images), with the
# ViewCodeSequence_CodeMeaning that goes with each.
MIMIC_VIEW_MEANINGS = {
    "PA": "postero-anterior",
    "AP": "antero-posterior",
    "LATERAL": "lateral",
    "LL": "left lateral",
    "": "",
}


def _mimic_report(rng: random.Random, phi: bool, day: dt.date) -> str:
    lines = [
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
    ]
    lines += [f" INDICATION:  ___F with {rng.choice(HISTORIES).lower()}", " "]
    if rng.random() < 0.5:
        lines += [" TECHNIQUE:  Chest PA and lateral", " "]
    lines += [f" COMPARISON:  {rng.choice(('None.', '___', 'Prior chest radiograph.'))}", " "]
    if rng.random() < 0.85:
        lines += [" FINDINGS: ", " ", " " + rng.choice(FINDINGS), " "]
    impression = rng.choice(IMPRESSIONS)
    if phi:
        impression += " " + _phi_sentence(rng, day)
    lines += [" IMPRESSION: ", " ", " " + impression, ""]
    return "\n".join(lines)


def _jpeg_pool(rng: np.random.Generator, per_size: int) -> list[tuple[bytes, tuple[int, int]]]:
    from PIL import Image

    pool = []
    for rows, cols in SIZES:
        for _ in range(per_size):
            arr = chest_like(rng, rows, cols, bits=8).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=90)
            pool.append((buf.getvalue(), (rows, cols)))
    return pool


def _write_csv_gz(path: Path, header: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with gzip.open(path, "wt", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def write_mimic_cxr_jpg(dest: Path, n: int = 8, seed: int = 0, *, reports: bool = True) -> Path:
    """Write a fake MIMIC-CXR-JPG v2.0.0 release for ``n`` patients under ``dest``.

    Layout: ``files/p1X/p{subject}/s{study}/{dicom_id}.jpg``, the four
    ``mimic-cxr-2.0.0-{metadata,chexpert,negbio,split}.csv.gz`` tables and, when ``reports``,
    the MIMIC-CXR report files ``files/p1X/p{subject}/s{study}.txt``.
    """
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    pool = _jpeg_pool(nrng, per_size=2)
    meta: list[dict[str, Any]] = []
    labels: dict[str, list[dict[str, Any]]] = {"chexpert": [], "negbio": []}
    splits: list[dict[str, Any]] = []
    for p in range(n):
        subject = 10_000_000 + seed * 1_000_000 + p * 7919 + rng.randint(0, 7000)
        split = ("train", "train", "train", "validate", "test")[p % 5]
        base = dt.date(2110, 1, 1) + dt.timedelta(days=rng.randint(0, 20000))
        for s in range(rng.randint(1, 3)):
            study = 50_000_000 + rng.randint(0, 9_999_999)
            day = base + dt.timedelta(days=60 * s)
            sdir = dest / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
            for which in labels:
                row: dict[str, Any] = {"subject_id": subject, "study_id": study}
                for name, v in labeler_values(rng, MIMIC_LABELS).items():
                    row[name] = "" if v is None else v
                labels[which].append(row)
            if reports:
                sdir.mkdir(parents=True, exist_ok=True)
                (sdir / f"s{study}.txt").write_text(
                    _mimic_report(rng, rng.random() < 0.3, day), encoding="utf-8"
                )
            for v in range(rng.randint(1, 3)):
                dicom_id = "-".join(f"{rng.getrandbits(32):08x}" for _ in range(5))
                data, (rows_, cols) = pool[rng.randrange(len(pool))]
                # a frontal view, then mostly LATERAL; some images have no ViewPosition at all
                view = (
                    rng.choice(("PA", "AP")),
                    rng.choice(("LATERAL", "LATERAL", "LATERAL", "LL")),
                    rng.choice(("AP", "LATERAL")),
                )[v]
                if len(meta) % 10 == 3:
                    view = ""
                (sdir / f"s{study}").mkdir(parents=True, exist_ok=True)
                (sdir / f"s{study}" / f"{dicom_id}.jpg").write_bytes(data)
                meta.append(
                    {
                        "dicom_id": dicom_id,
                        "subject_id": subject,
                        "study_id": study,
                        "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
                        "ViewPosition": view,
                        "Rows": rows_,
                        "Columns": cols,
                        "StudyDate": day.strftime("%Y%m%d"),
                        "StudyTime": f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}",
                        "ProcedureCodeSequence_CodeMeaning": "CHEST (PA AND LAT)",
                        "ViewCodeSequence_CodeMeaning": MIMIC_VIEW_MEANINGS[view],
                        "PatientOrientationCodeSequence_CodeMeaning": "Erect",
                    }
                )
                splits.append(
                    {"dicom_id": dicom_id, "study_id": study, "subject_id": subject, "split": split}
                )
    _write_csv_gz(dest / "mimic-cxr-2.0.0-metadata.csv.gz", MIMIC_METADATA, meta)
    for which, rows in labels.items():
        _write_csv_gz(dest / f"mimic-cxr-2.0.0-{which}.csv.gz", MIMIC_LABEL_COLUMNS, rows)
    _write_csv_gz(dest / "mimic-cxr-2.0.0-split.csv.gz", MIMIC_SPLIT_COLUMNS, splits)
    return dest
