"""The Healthsheet model, its YAML answers, JSON Schema and completeness check."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import yaml

from meddata.datasheet import (
    SECTION_TITLES,
    Healthsheet,
    load_healthsheet_yaml,
    packaged_sheet,
    parse_healthsheet,
    questions,
    unanswered,
)
from meddata.datasheet.__main__ import schema_text
from meddata.errors import MeddataError, SchemaError

REGISTERED = ["chexpert-plus", "mimic-cxr-jpg", "dicom-folder"]
REPO = Path(__file__).resolve().parents[1]


def _yaml(name: str) -> str:
    return resources.files("meddata.datasheets").joinpath(f"{name}.yaml").read_text("utf-8")


@pytest.mark.parametrize("name", REGISTERED)
def test_yaml_model_json_model_round_trip(name: str) -> None:
    sheet = packaged_sheet(name)
    assert sheet is not None and sheet.dataset == name
    again = Healthsheet.model_validate_json(sheet.model_dump_json())
    assert again == sheet
    # and back to YAML (as a user would save it) gives the same sheet
    data = json.loads(sheet.model_dump_json(exclude={"statistics"}))
    assert parse_healthsheet(yaml.safe_load(yaml.safe_dump(data)), "x") == sheet


def test_fourteen_sections_in_order() -> None:
    titles = [title for _, title, _ in Healthsheet().sections()]
    assert len(titles) == 14
    assert titles[0] == "General information" and titles[-1] == "Maintenance"
    assert list(SECTION_TITLES) == [k for k, _, _ in Healthsheet().sections()]


def test_json_schema_file_is_current() -> None:
    current = (REPO / "schemas" / "healthsheet.schema.json").read_text("utf-8")
    assert current == schema_text(), "Regenerate it: python -m meddata.datasheet"


def test_dicom_folder_template_lists_every_question() -> None:
    data = yaml.safe_load(_yaml("dicom-folder"))
    listed = {f"{s}.{f}" for s, fields in data.items() if isinstance(fields, dict) for f in fields}
    assert listed == {q.path for q in questions()}
    sheet = packaged_sheet("dicom-folder")
    assert sheet is not None
    assert len(unanswered(sheet)) >= len(questions()) - 3  # a template: almost all unanswered


def test_paper_based_sheets_cite_their_papers_and_leave_unknowns_open() -> None:
    chexpert, mimic = packaged_sheet("chexpert-plus"), packaged_sheet("mimic-cxr-jpg")
    assert chexpert is not None and mimic is not None
    assert chexpert.general.citations and chexpert.general.citations[0].arxiv == "2405.19538"
    assert mimic.general.citations and mimic.general.citations[0].arxiv == "1901.07042"
    assert chexpert.labelling.label_type == "proxy" and mimic.labelling.label_type == "proxy"
    # nothing about IRB or consent is stated in the CheXpert Plus paper: stays unanswered
    open_paths = {q.path for q in unanswered(chexpert)}
    assert {"collection.irb_approved", "collection.consent"} <= open_paths
    assert "statistics" not in yaml.safe_load(_yaml("chexpert-plus"))


def test_paper_based_sheets_describe_the_converted_dataset() -> None:
    chexpert, mimic = packaged_sheet("chexpert-plus"), packaged_sheet("mimic-cxr-jpg")
    assert chexpert is not None and mimic is not None
    # the release's own split exists and is kept as the split set `official`
    assert chexpert.composition.recommended_splits and mimic.composition.recommended_splits
    assert "`official`" in chexpert.composition.recommended_splits
    # MIMIC: the reports converted into `note`, one label set per converted dataset
    assert any("report" in m for m in mimic.composition.modalities or [])
    assert "-O labels=chexpert|negbio" in (mimic.composition.labels_description or "")
    assert len(mimic.labelling.proxy_labels or []) == 1
    assert "note table" in (mimic.composition.missing_information or "")
    # creators typed by the answers: organizations spelled out, plain names are people
    kinds = {
        (c if isinstance(c, str) else c.name): (c if isinstance(c, str) else c.type)
        for c in (mimic.general.creators or []) + (chexpert.general.creators or [])
    }
    assert kinds["MIT Laboratory for Computational Physiology"] == "organization"
    assert kinds["VinBrain"] == "organization"
    assert kinds["Pierre Chambon"] == "Pierre Chambon"  # a plain name: a person


def test_completeness_counts() -> None:
    empty = Healthsheet()
    assert len(unanswered(empty)) == len(questions())
    answered = empty.model_copy(update={"dataset": "x"})
    answered.uses.out_of_scope_uses = []  # an empty list is an answer ("none")
    missing = {q.path for q in unanswered(answered)}
    assert "uses.out_of_scope_uses" not in missing and "uses.intended_uses" in missing


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("composition:\n  patient_cont: 3\n", "composition.patient_cont: unknown key"),
        ("composition:\n  patient_count: many\n", "composition.patient_count"),
        ("labelling:\n  label_type: guessed\n", "labelling.label_type"),
        ("general:\n  citations:\n    - arxiv: '1'\n", "general.citations[0].text"),
        ("colection: {}\n", "colection: unknown key"),
    ],
)
def test_bad_yaml_names_the_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "sheet.yaml"
    path.write_text(text)
    with pytest.raises(MeddataError) as info:
        load_healthsheet_yaml(path)
    assert isinstance(info.value, SchemaError)
    assert where in str(info.value)


def test_statistics_cannot_be_typed_by_hand() -> None:
    with pytest.raises(SchemaError, match="computed from the data"):
        parse_healthsheet({"statistics": {"patients": 3}}, "sheet.yaml")


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("general: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(SchemaError, match="not valid YAML"):
        load_healthsheet_yaml(path)
