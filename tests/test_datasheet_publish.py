"""Publishing: Croissant (validated and loaded by mlcroissant), Hugging Face card (loaded by
``datasets``), the datasheet written into a dataset, and the ``datasheet`` command."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

import meddata
from meddata.cli.datasheet import datasheet
from meddata.dataset import Dataset
from meddata.datasheet import (
    FORMATS,
    Healthsheet,
    build_healthsheet,
    load_healthsheet,
    packaged_sheet,
    parse_healthsheet,
    publish,
    questions,
    rai_properties,
    to_croissant,
    unanswered,
    write_dataset_datasheet,
)
from meddata.manifest import write_manifest
from tests.test_datasheet_fixtures import build_dataset, mini, table_frame  # noqa: F401

RAI_NAMES = {
    "rai:annotatorDemographics",
    "rai:dataCollection",
    "rai:dataCollectionType",
    "rai:dataCollectionTimeframe",
    "rai:dataPreprocessingProtocol",
    "rai:dataAnnotationProtocol",
    "rai:personalSensitiveInformation",
    "rai:dataBiases",
    "rai:dataLimitations",
    "rai:dataUseCases",
    "rai:dataSocialImpact",
    "rai:dataReleaseMaintenancePlan",
}


@pytest.fixture(scope="module")
def published(mini: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    sheet = packaged_sheet("mimic-cxr-jpg")
    assert sheet is not None
    out = tmp_path_factory.mktemp("published")
    return publish(mini, ["all"], out, sheet=build_healthsheet(mini, sheet))


def test_publish_writes_every_format(published: dict[str, Path]) -> None:
    assert set(published) == set(FORMATS)
    assert all(p.is_file() for p in published.values())


def test_croissant_content(mini: Dataset, published: dict[str, Path]) -> None:  # noqa: F811
    doc = json.loads(published["croissant"].read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    rai = {k for k in doc if k.startswith("rai:")}  # spelled as the RAI specification does
    assert rai <= RAI_NAMES
    assert {"rai:dataCollectionTimeframe", "rai:dataUseCases", "rai:dataLimitations"} <= rai
    assert doc["rai:dataCollectionTimeframe"] == "2011 – 2016"
    assert "rai:dataSocialImpact" not in rai  # unanswered in the sheet: left out, not invented
    files = {o["@id"]: o for o in doc["distribution"] if o["@type"] == "cr:FileObject"}
    folder = published["croissant"].parent
    for entry in mini.manifest["tables"].values():
        for shard in entry["shards"]:
            obj = files[shard["path"].removeprefix("tables/")]
            data = (folder / obj["contentUrl"]).read_bytes()
            assert obj["sha256"] == hashlib.sha256(data).hexdigest() == shard["sha256"]
            assert obj["encodingFormat"] == "application/x-parquet"
    fields = {f["@id"]: f for rs in doc["recordSet"] for f in rs["field"]}
    types = {i: f.get("dataType") for i, f in fields.items()}
    assert types["samples/sample_id"] == "cr:Int64"
    assert types["samples/label_edema"] == "cr:Float32"
    assert types["samples/sex"] == "sc:Text"
    assert types["image/rows"] == "cr:Int32"
    assert types["image_occurrence/image_occurrence_date"] == "sc:Date"
    # the tensor cell: one sub-field per part, read from the struct column (raw cells: bytes)
    parts = {f["name"]: f for f in fields["image/pixels"]["subField"]}
    assert list(parts) == ["data", "codec", "dtype", "shape"]
    assert parts["data"]["dataType"] == "sc:Text" and parts["shape"]["dataType"] == "cr:Int32"
    assert parts["data"]["source"]["extract"] == {"column": "pixels"}
    assert parts["data"]["source"]["transform"] == {"jsonPath": "data"}
    # people are persons, institutions organizations (as the sheet's answers say)
    creators = {c["name"]: c["@type"] for c in doc["creator"]}
    assert creators["Alistair E. W. Johnson"] == "sc:Person"
    assert creators["MIT Laboratory for Computational Physiology"] == "sc:Organization"
    # published: the release's date from the sheet; modified: when meddata converted it
    assert doc["datePublished"] == "2019-11-14"
    assert doc["dateModified"] == mini.manifest["created"][:10] == "2026-01-02"


def _mlcroissant(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = "from mlcroissant.scripts.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_croissant_validates_and_loads_records(
    mini: Dataset,  # noqa: F811
    published: dict[str, Path],
    tmp_path: Path,
) -> None:
    mlc = pytest.importorskip("mlcroissant")
    path = published["croissant"]
    result = _mlcroissant("validate", "--jsonld", path.name, cwd=path.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "error(s)" not in result.stderr
    # single-shard tables load from the published folder
    records = list(mlc.Dataset(jsonld=str(path)).records("person"))
    assert sorted(r["person/person_id"] for r in records) == sorted(
        table_frame(mini, "person")["person_id"].to_list()
    )
    # the multi-shard samples table loads through its FileSet from the dataset root
    assert len(mini.manifest["tables"]["samples"]["shards"]) == 2
    at_root = Path(mini.root) / "croissant-test.jsonld"
    try:
        at_root.write_text(json.dumps(to_croissant(mini, load_healthsheet(mini), "")))
        rows = list(mlc.Dataset(jsonld=str(at_root)).records("samples"))
    finally:
        at_root.unlink()
    expected = table_frame(mini, "samples").sort("sample_id")
    got = sorted(rows, key=lambda r: r["samples/sample_id"])
    assert [r["samples/sample_id"] for r in got] == expected["sample_id"].to_list()
    assert [r["samples/sex"] for r in got] == [
        None if s is None else s.encode() for s in expected["sex"].to_list()
    ]
    # the pixels come through Croissant too, and decode to the stored arrays
    from meddata.tensor import decode

    images = {
        r["image/image_id"]: r["image/pixels"] for r in mlc.Dataset(str(path)).records("image")
    }
    stored = table_frame(mini, "image")
    assert set(images) == set(stored["image_id"])
    for image_id, cell in zip(stored["image_id"], stored["pixels"], strict=True):
        got_cell = images[image_id]
        rebuilt = {
            "data": got_cell["image/pixels/data"],
            "codec": got_cell["image/pixels/codec"].decode(),
            "dtype": got_cell["image/pixels/dtype"].decode(),
            "shape": [int(n) for n in got_cell["image/pixels/shape"]],
        }
        assert (decode(rebuilt) == decode(cell)).all()


def test_hf_card_loads_with_datasets(
    mini: Dataset,  # noqa: F811
    published: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    folder = published["hf"].parent
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    samples = table_frame(mini, "samples")
    expected = dict(samples.group_by("split").len().iter_rows())
    assert {name: len(part) for name, part in loaded.items()} == expected
    train = loaded["train"]
    assert str(train.features["label_edema"].dtype) == "float32"
    got = pl.from_arrow(train.data.table)
    assert isinstance(got, pl.DataFrame)
    got = got.sort("sample_id")
    want = samples.filter(pl.col("split") == "train").sort("sample_id")
    assert got["sample_id"].to_list() == want["sample_id"].to_list()
    assert got["label_edema"].to_list() == want["label_edema"].to_list()
    card = published["hf"].read_text()
    assert card.startswith("---\n") and "configs:" in card and "dataset_info:" in card
    assert "license: other" in card and "## Uses" in card


def test_every_rai_property_is_filled_from_a_complete_sheet() -> None:
    sheet = _complete_sheet()
    assert set(rai_properties(sheet)) == RAI_NAMES


def test_write_dataset_datasheet_and_load_back(tmp_path: Path) -> None:
    ds = build_dataset(tmp_path, name="chexpert-plus")  # picks up the packaged answers
    entry = write_dataset_datasheet(ds)
    # named by content, like split files: a published datasheet file is never rewritten
    assert re.fullmatch(r"datasheet/healthsheet-[0-9a-f]{12}\.json", entry["healthsheet"])
    assert re.fullmatch(r"datasheet/datasheet-[0-9a-f]{12}\.md", entry["markdown"])
    for rel, digest in entry["sha256"].items():
        assert hashlib.sha256((Path(ds.root) / rel).read_bytes()).hexdigest() == digest
        assert rel.rsplit("-", 1)[1].startswith(digest[:12])
    manifest = {**ds.manifest, "datasheet": entry}
    write_manifest(ds.fs, ds.root, manifest)
    stored = Path(ds.root) / entry["healthsheet"]
    stored.write_text(stored.read_text().replace('"CheXpert Plus"', '"Stored title"', 1))
    sheet = load_healthsheet(meddata.load(ds.root))
    assert sheet.general.title == "Stored title"  # read from the file the manifest names
    stored.unlink()
    sheet = load_healthsheet(meddata.load(ds.root))  # missing: built from the packaged answers
    assert sheet.general.title == "CheXpert Plus"
    assert sheet.statistics is not None and sheet.statistics.samples == 36
    assert entry["unanswered"] == len(unanswered(sheet))


def test_dicom_folder_dataset_gets_the_template(dicom_dataset: Path, tmp_path: Path) -> None:
    ds = meddata.load(str(dicom_dataset))
    sheet = load_healthsheet(ds)  # nothing stored yet: built from the template
    assert sheet.dataset == "dicom-folder" and sheet.general.title == "DICOM folder"
    assert sheet.statistics is not None
    assert sheet.statistics.patients == table_frame(ds, "person")["person_id"].n_unique()
    assert sheet.statistics.labels == [] and sheet.statistics.splits == {}
    written = publish(ds, ["html", "croissant"], tmp_path)
    assert "<svg" in written["html"].read_text()
    # a plain string names one format (or several, comma-separated), not its letters
    assert set(publish(ds, "md", tmp_path / "one")) == {"md"}
    assert set(publish(ds, "md,json", tmp_path / "two")) == {"md", "json"}


def test_cli_check_strict_exit_codes(mini: Dataset) -> None:  # noqa: F811
    runner = CliRunner()
    result = runner.invoke(datasheet, [mini.root, "--check"], standalone_mode=False)
    assert result.exception is None and result.return_value == 0
    assert "unanswered question(s)" in result.output and "general.title" in result.output
    strict = runner.invoke(datasheet, [mini.root, "--check", "--strict"], standalone_mode=False)
    assert strict.return_value == 1


def _complete_sheet() -> Healthsheet:
    data: dict[str, dict[str, object]] = {}
    literals = {
        "attribute_source": "recorded",
        "label_type": "gold",
        "consent": "obtained",
        "access_type": "open",
    }
    for q in questions():
        section, field = q.path.split(".")
        annotation = str(type(getattr(Healthsheet(), section)).model_fields[field].annotation)
        value: object = "answer"
        if "list[str]" in annotation:
            value = ["item"]
        elif "list" in annotation:
            value = []
        elif "bool" in annotation:
            value = False
        elif "int" in annotation:
            value = 1
        elif "Literal" in annotation:
            value = literals[field]
        elif "Agreement" in annotation:
            value = {"metric": "kappa", "value": 0.8}
        data.setdefault(section, {})[field] = value
    return parse_healthsheet(data, "complete")


def test_cli_complete_sheet_passes_strict(mini: Dataset, tmp_path: Path) -> None:  # noqa: F811
    sheet = _complete_sheet()
    path = tmp_path / "complete.yaml"
    path.write_text(yaml.safe_dump(json.loads(sheet.model_dump_json(exclude={"statistics"}))))
    runner = CliRunner()
    args = [mini.root, "--sheet", str(path), "--check", "--strict"]
    result = runner.invoke(datasheet, args, standalone_mode=False)
    assert result.exception is None, result.output
    assert result.return_value == 0 and "0 unanswered" in result.output


def test_cli_publishes_and_prints(mini: Dataset, tmp_path: Path) -> None:  # noqa: F811
    runner = CliRunner()
    out = tmp_path / "site"
    args = [mini.root, "--format", "html", "--format", "md", "-o", str(out)]
    result = runner.invoke(datasheet, args, standalone_mode=False)
    assert result.exception is None, result.output
    assert (out / "datasheet.html").exists() and (out / "datasheet.md").exists()
    assert "file://" in result.output
    printed = runner.invoke(datasheet, [mini.root], standalone_mode=False)
    assert printed.output.startswith("# Healthsheet: ")
    needs_dir = runner.invoke(datasheet, [mini.root, "--format", "hf"], standalone_mode=False)
    assert needs_dir.exception is not None and "-o DIR" in str(needs_dir.exception)


def test_chexpert_plus_croissant_validates_despite_spaces_in_label_names(tmp_path: Path) -> None:
    pytest.importorskip("mlcroissant")
    from meddata.adapters.chexpert_plus import ChexpertPlusAdapter
    from meddata.convert import convert
    from meddata.publish import add_split
    from meddata.splits import make_splits

    src = ChexpertPlusAdapter.synthesize(tmp_path / "src", n=8, seed=3)
    ds = meddata.load(
        convert(
            "chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False
        ).path
    )
    result = make_splits(ds.table("samples").collect(), seed=0)
    ds = add_split(ds, "fair", result.assignments, strategy=result.strategy, report=result.report)
    files = publish(ds, ["croissant", "json"], tmp_path / "pub")
    doc = json.loads(files["croissant"].read_text())
    ids = [f["@id"] for rs in doc["recordSet"] for f in rs.get("field", [])]
    assert ids and not any(any(ch.isspace() for ch in i) for i in ids)
    assert len(ids) == len(set(ids))
    check = _mlcroissant(
        "validate", "--jsonld", files["croissant"].name, cwd=files["croissant"].parent
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # statistics are recomputed at publish time: the split set added after conversion is there
    sheet = json.loads(files["json"].read_text())
    assert "fair" in json.dumps(sheet["statistics"])
    # people are persons, groups organizations; the release's year is its publication date
    creators = {c["name"]: c["@type"] for c in doc["creator"]}
    assert creators["Pierre Chambon"] == "sc:Person"
    assert creators["VinBrain"] == "sc:Organization"
    assert doc["datePublished"] == "2024" and doc["dateModified"] == ds.manifest["created"][:10]
    # PNG cells are images to Croissant: mlcroissant yields them decoded
    pixels = {f["name"]: f for rs in doc["recordSet"] for f in rs["field"]}["pixels"]
    assert {p["name"]: p["dataType"] for p in pixels["subField"]}["data"] == "sc:ImageObject"
    mlc = pytest.importorskip("mlcroissant")
    record = next(iter(mlc.Dataset(str(files["croissant"])).records("image")))
    image = record["image/pixels"]["image/pixels/data"]
    shape = [int(n) for n in record["image/pixels"]["image/pixels/shape"]]
    assert [image.height, image.width] == shape[:2]
