"""Regression tests for privacy defects found in review (synthetic PHI only)."""

from __future__ import annotations

import json
import logging
import unicodedata
import warnings
from importlib import resources
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from meddata.cli.deid import deid as deid_cli
from meddata.deid import Deidentifier, DeidOptions, PhiSpan, surrogates
from meddata.deid.dicom import _cap_age_string, _shift_da
from meddata.deid.names import find_names
from meddata.deid.patterns import find_ids
from meddata.deid.spans import resolve_overlaps

KEY = bytes(range(32))
RETAIN = DeidOptions(retain_longitudinal_dates=True, retain_patient_characteristics=True)


def _ds() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Müller^Jürgen"
    ds.PatientID = "MRN555"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 2
    ds.StudyInstanceUID = "1.2.3.9"
    ds.SOPInstanceUID = "1.2.3.9.1"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.StudyDescription = "CT Thorax Müller Jürgen"
    return ds


def _all_text(ds: Dataset) -> str:
    return " ".join(str(e.value) for e in ds.iterall() if e.VR != "SQ")


def test_dicom_free_text_in_sequences_and_unlisted_attributes_removed() -> None:
    ds = _ds()
    content = Dataset()
    content.TextValue = "Findings discussed with Okonkwo Ngozi"
    ds.ContentSequence = Sequence([content])
    graphic = Dataset()
    text_item = Dataset()
    text_item.UnformattedTextValue = "Patient Okonkwo"
    graphic.TextObjectSequence = Sequence([text_item])
    ds.GraphicAnnotationSequence = Sequence([graphic])
    ds.add_new(0x00400400, "LT", "Call Okonkwo at home")
    ds.add_new(0x08220010, "LO", "Okonkwo secret")
    ds.add_new(0x00400006, "PN", "Adeyemi^Ngozi")  # ScheduledPerformingPhysicianName if unlisted
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    Deidentifier(KEY).dicom(ds)
    text = _all_text(ds)
    assert "Okonkwo" not in text and "Adeyemi" not in text
    assert 0x08220010 not in ds and 0x00400400 not in ds
    assert len(ds.ContentSequence) == 0 and len(ds.GraphicAnnotationSequence) == 0
    assert ds.Modality == "CT" and list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.Rows == 2
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Chest"


def test_non_ascii_names() -> None:
    out = Deidentifier(KEY).text("José Núñez was seen by Dr. Müller.", "p").text
    assert "Müller" not in out and "Núñez" not in out
    ds = _ds()
    Deidentifier(KEY).dicom(ds)
    assert "Müller" not in ds.StudyDescription and "Jürgen" not in ds.StudyDescription
    assert "CT Thorax" in ds.StudyDescription


@pytest.mark.parametrize(
    "text,real",
    [
        ("at 2021-03-14T10:22:00.000Z ok", "2021"),
        ("at 2021-03-14T10:22:00 ok", "03-14"),
        ("file CXR_20210314.dcm", "20210314"),
        ("study_2021-03-14 x", "2021-03-14"),
        ("on 14Mar2021.", "14Mar2021"),
        ("on 14MAR2021.", "14MAR2021"),
        ("on Mar-14-2021 x", "Mar-14-2021"),
        ("born 1931/7/4 x", "1931/7/4"),
        ("seen 14/3 in clinic", "14/3"),
        ("seen on March the 14th, 2021 ok", "March"),
        ("seen on March the 14th, 2021 ok", "2021"),
        ("on Mar 14th, '21 ok", "'21"),
    ],
)
def test_dates_in_more_forms_are_shifted_whole(text: str, real: str) -> None:
    out = Deidentifier(KEY).text(text, "p").text
    assert real not in out


def test_crlf_keeps_signature_and_initials_detection() -> None:
    note = "Findings: normal.\r\n\r\nNgozi Okonkwo\r\nNO/kl\r\n"
    lf = {(s.start, s.end) for s in find_names(note.replace("\r\n", "\n "))}
    spans = find_names(note)
    words = {note[s.start : s.end] for s in spans}
    assert "Ngozi Okonkwo" in words and "NO" in words
    assert lf  # the same note with LF is detected too


@pytest.mark.parametrize(
    "text,name",
    [
        ("Findings dw dr. okonkwo today.", "okonkwo"),
        ("Findings d/w referring dr okonkwo at 3pm.", "okonkwo"),
        ("Findings d/w Okonkwo (ED attending).", "Okonkwo"),
        ("RADIOLOGIST SIGNATURE: OKONKWO, NGOZI", "NGOZI"),
        ("RADIOLOGIST SIGNATURE: OKONKWO, NGOZI", "OKONKWO"),
        ("Report finalized on 03/14/2021 by OKONKWO NGOZI", "OKONKWO"),
        ("Exam performed by tech OKONKWO.", "OKONKWO"),
        ("Results given to nurse Ngozi Adeyemi.", "Adeyemi"),
        ("Pt name: okonkwo, ngozi", "ngozi"),
        ("Pt name: okonkwo, ngozi", "okonkwo"),
    ],
)
def test_radiology_name_forms(text: str, name: str) -> None:
    assert name not in Deidentifier(KEY).text(text, "p").text


def test_no_false_names_after_new_cues() -> None:
    text = "CT w/ contrast. Nurse visit. Tech difficulty noted."
    assert Deidentifier(KEY).text(text, "p").text == text


def test_dicom_ages_and_date_ranges() -> None:
    for value in ("93Y", "093", "093Y", " 93 Y"):
        assert _cap_age_string(value) == "090Y"
    assert _cap_age_string("045Y") == "045Y" and _cap_age_string("093M") == "093M"
    assert _shift_da("20210314-20210401", 10) == "20210304-20210322"
    assert _shift_da("2021031", 10) == "" and _shift_da("202103140", 10) == ""
    assert _shift_da("20210314101500.5+0100", 1, "DT") == "20210313101500.5+0100"
    assert _shift_da("20210314Okonkwo", 1, "DT") == ""
    ds = _ds()
    ds.StudyDate = "20210314-20210401"
    ds.PatientAge = "93Y"
    Deidentifier(KEY, RETAIN).dicom(ds)
    assert "2021031" not in ds.StudyDate and "20210401" not in ds.StudyDate
    assert ds.PatientAge == "090Y"


def test_file_meta_application_entity_titles_removed() -> None:
    ds = _ds()
    meta = FileMetaDataset()
    meta.MediaStorageSOPInstanceUID = "1.2.3.9.1"
    for tag in (0x00020016, 0x00020017, 0x00020018):
        meta.add_new(tag, "AE", "OKONKWO_WS")
    for tag in (0x00020026, 0x00020027, 0x00020028):
        meta.add_new(tag, "UR", "http://okonkwo.example/")
    ds.file_meta = meta
    Deidentifier(KEY).dicom(ds)
    for tag in (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028):
        assert tag not in ds.file_meta


def test_pydicom_warnings_and_logs_are_silenced(caplog: pytest.LogCaptureFixture) -> None:
    ds = _ds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.add_new(0x00081030, "LO", "Okonkwo " * 12)  # too long for LO
        ds.PatientAge = "Okonkwo93"

    def noisy(dataset: Dataset) -> None:  # stands in for a pydicom call that warns and logs
        logging.getLogger("pydicom").warning("bad value 'Okonkwo93'")
        warnings.warn("bad value 'Okonkwo93'", UserWarning, stacklevel=1)

    caplog.clear()
    before = logging.getLogger("pydicom").level
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.DEBUG):
            from meddata.deid.dicom import quiet_pydicom

            with quiet_pydicom():
                noisy(ds)
            Deidentifier(KEY, RETAIN).dicom(ds)
    assert not [w for w in caught if "Okonkwo" in str(w.message)]
    assert "Okonkwo" not in caplog.text
    assert logging.getLogger("pydicom").level == before  # restored afterwards


def test_cli_names_a_file_without_sop_uid_by_a_keyed_id_never_its_path(tmp_path: Path) -> None:
    """A file with no SOP Instance UID used to be quarantined; it is now de-identified and
    written under a keyed id of its path, and the patient-named path stays out of OUT_DIR."""
    src = tmp_path / "in"
    src.mkdir()
    files = Path(str(resources.files("pydicom") / "data" / "test_files"))
    (src / "good.dcm").write_bytes((files / "CT_small.dcm").read_bytes())
    bad = pydicom.dcmread(files / "CT_small.dcm")
    del bad.SOPInstanceUID
    bad.save_as(src / "Okonkwo_Ngozi.dcm", enforce_file_format=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(deid_cli, ["dicom", str(src), str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["files"]["written"] == 2 and summary["files"]["written_named_by_id"] == 1
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2 and not any("Okonkwo" in n for n in names)
    assert not (out / "quarantine.jsonl").exists()


def test_long_whitespace_and_garbage_notes_finish() -> None:
    for note in (" " * 200_000, "\t \n" * 70_000, "A1-" * 70_000, "Dr , ^ x/ " * 20_000):
        Deidentifier(KEY).find_phi(note)
        list(find_ids(note))


def test_cap_age_infinite_is_none() -> None:
    from meddata.deid.structured import cap_age

    assert cap_age("inf") is None and cap_age(float("-inf")) is None and cap_age("93") == 90


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("A ninety-three year old woman with cough.", "AGE", "ninety-three"),
        ("one hundred and two years old, frail", "AGE", "one hundred and two"),
        ("Patient is 93. Heart rate is 93 bpm.", "AGE", "is 93."),
        ("Call +44 20 7946 0958 today.", "PHONE", "7946 0958"),
    ],
)
def test_safe_harbor_ages_in_words_and_international_phones(
    text: str, kind: str, secret: str
) -> None:
    result = Deidentifier(KEY).text(text, "p1")
    assert kind in {s.type for s in result.spans}
    assert secret not in result.text


def test_measurements_next_to_plus_signs_and_rates_are_not_phi() -> None:
    text = "Nodule +1.5 mm, T4, 5 mm, grade 2. Heart rate is 93 bpm."
    assert Deidentifier(KEY).text(text, "p1").text == text


# -- non-ASCII names: the whole name is replaced, not only its ASCII letters ------------------

_NFD = unicodedata.normalize


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Seen by Dr. José Müller. Dr. Ödön Ürge.", ["José", "Müller", "Ödön", "Ürge"]),
        ("Seen by Łukasz Żółkiewski.", ["Łukasz", "Żółkiewski"]),
        ("Dictated by: Ödön Ürge, MD", ["Ödön", "Ürge"]),
        ("Seen by Иван Петров. Петров agrees.", ["Иван", "Петров"]),
        ("Dr. Γιάννης Παπαδόπουλος reviewed the films.", ["Γιάννης", "Παπαδόπουλος"]),
        ("Report read by Dr. 张伟. 张伟 will follow up.", ["张伟"]),
        ("Patient: 김민준", ["김민준"]),
        ("Dr. 山田太郎 was called.", ["山田太郎"]),
        ("Referring physician: MÜLLER^JÜRGEN", ["MÜLLER", "JÜRGEN"]),
        ("Seen by Dr. Nguyễn Văn Minh today.", ["Nguyễn", "Văn", "Minh"]),
        ("Seen by Dr. अमित शर्मा.", ["अमित", "शर्मा"]),
        ("Seen by Dr. สมชาย ใจดี.", ["สมชาย", "ใจดี"]),
        ("Seen by Dr. محمد علي.", ["محمد", "علي"]),
        # Decomposed text (e + U+0301): the name used to end at the first combining mark.
        (_NFD("NFD", "Seen by Dr. José Müller. Müller agrees."), ["Jos", "ller"]),
        (_NFD("NFD", "Dr. Nguyễn Văn Minh"), ["Nguy", "Minh"]),
    ],
)
def test_non_ascii_names_leave_no_fragment(text: str, names: list[str]) -> None:
    """The audit found "José Müller" -> "Nettletoné Qüdempsey" and "张伟" left as it was."""
    out = Deidentifier(KEY).text(text, "p").text
    assert out.isascii(), out  # the context is ASCII: nothing of the names is left
    for word in names:
        assert word not in out
    assert [s.type for s in Deidentifier(KEY).find_phi(text)].count("NAME") >= 1


def test_cli_deid_text_replaces_whole_non_ascii_names(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_bytes(bytes(range(100, 132)))
    key.chmod(0o600)
    text = "Seen by Dr. José Müller. Dr. Ödön Ürge.\nŁukasz Żółkiewski\nDr. 张伟 called.\n"
    result = CliRunner().invoke(deid_cli, ["text", "--key-file", str(key)], input=text)
    assert result.exit_code == 0, result.output
    assert result.output.isascii(), result.output
    assert result.output.count("Dr. ") == 3 and len(result.output.splitlines()) == 3


def test_name_surrogates_keep_shape_and_agree_across_spellings() -> None:
    name = surrogates.name
    title, upper, lower = name(KEY, "Ödön Ürge"), name(KEY, "ÖDÖN ÜRGE"), name(KEY, "ödön ürge")
    assert len(title.split(" ")) == 2 and title.istitle()
    assert upper == title.upper() and lower == title.lower()
    assert name(KEY, _NFD("NFD", "José Müller")) == name(KEY, "José Müller")
    assert name(KEY, "Straße") == name(KEY, "Strasse")  # casefolded: "STRASSE" is the same word
    assert name(KEY, "José") == name(KEY, "Jose")  # accents do not split a person in two
    assert name(KEY, "MÜLLER^JÜRGEN").count("^") == 1
    # Dr. Ödön Ürge's initials: one ASCII capital each, never the original letter.
    initials = name(KEY, "Ö. Ü.")
    assert len(initials) == 5 and initials[0] not in "OÖ" and initials[3] not in "UÜ"
    assert initials[0].isupper() and initials[3].isupper() and initials.isascii()
    # A single character of a script without case is a whole name, not an initial.
    assert len(name(KEY, "王")) > 1 and name(KEY, "王").istitle()
    assert name(KEY, "\u0301") == ""  # a stray combining mark is dropped, not kept


def test_name_surrogates_never_reproduce_the_word() -> None:
    """A word that happened to be its own surrogate ("N" -> "N", or a real "Ashby" drawn from
    the fake pool) was left as it was; the next fake is taken instead."""
    for key in (KEY, b"t" * 32, bytes(range(5, 37))):
        for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            assert surrogates.name(key, letter) != letter
            assert surrogates.name(key, letter.lower()) != letter.lower()
        for fake in surrogates._FAKE_GIVEN + surrogates._FAKE_FAMILY:
            assert surrogates.name(key, fake).lower() != fake.lower()


@pytest.mark.parametrize("phi_type", ["ID", "DEVICE", "ZIP", "OTHER"])
def test_shaped_surrogates_replace_non_ascii_letters(phi_type: str) -> None:
    """IDs and backend spans of unknown type kept their non-ASCII letters ("ÅB12345")."""
    for value in ("ÅB-12345", "Żółkiewski", "张伟-0042", _NFD("NFD", "JOSÉ-77"), "٣٤½"):
        out = surrogates.surrogate(KEY, phi_type, value, 0)
        assert out.isascii(), (value, out)
        assert out.count("-") == value.count("-")
    assert surrogates.phone(KEY, "(617) 555-0199\u0301").isascii()  # marks don't shift digits


# -- non-ASCII values in the pattern detectors, spans and propagation --------------------------


def _covered_by(text: str, value: str, phi_type: str) -> bool:
    start = text.index(value)
    return any(
        s.type == phi_type and s.start <= start and start + len(value) <= s.end
        for s in Deidentifier(KEY).find_phi(text)
    )


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize(
    ("text", "phi_type", "value"),
    [
        ("MRN: ÅB12345", "ID", "ÅB12345"),
        ("Accession number ŻÓ-2021-004512 pending.", "ID", "ŻÓ-2021-004512"),
        ("Outside reference ÅB12345678 on file.", "ID", "ÅB12345678"),
        ("Case ÅB-2021-0042 was filed.", "ID", "ÅB-2021-0042"),
        ("Pacemaker, serial number ŻB123456.", "DEVICE", "ŻB123456"),
        ("Email josé.núñez@example.com with questions.", "EMAIL", "josé.núñez@example.com"),
        ("Lives at 12 Łąkowa Street, Apt 4É.", "ADDRESS", "12 Łąkowa Street, Apt 4É"),
        ("Lives at 7 Öster Väg Road.", "ADDRESS", "7 Öster Väg Road"),
        ("Address: 56 Elm Ave\nZürich, IL 62704", "CITY", "Zürich"),
        ("Lives in São José, CA 95112.", "CITY", "São José"),
        (
            "Transferred from Szpital Żółkiewski Medical Center today.",
            "INSTITUTION",
            "Szpital Żółkiewski Medical Center",
        ),
        ("Seen at Żółkiewski Hospital today.", "INSTITUTION", "Żółkiewski Hospital"),
        ("Transferred from Hospital of São Paulo today.", "INSTITUTION", "Hospital of São Paulo"),
        ("A letter from the university of zürich.", "INSTITUTION", "university of zürich"),
        ("Seen at University of Łódź Hospital.", "INSTITUTION", "University of Łódź Hospital"),
    ],
)
def test_non_ascii_values_are_found_by_the_patterns(
    text: str, phi_type: str, value: str, form: str
) -> None:
    """The pattern detectors only knew A-Z: "MRN: ÅB12345", "12 Łąkowa Street", "Zürich, IL"
    and "Szpital Żółkiewski Medical Center" passed through unchanged (decomposed text too)."""
    text, value = _NFD(form, text), _NFD(form, value)
    assert _covered_by(text, value, phi_type)
    out = Deidentifier(KEY).text(text, "p").text
    assert out.isascii(), out  # the context is ASCII: nothing of the value is left


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize(
    "text",
    [
        "Sjögren syndrome and Ménière disease are noted.",
        "Café-au-lait spots. Naïve T cells, 12 Ångström.",
        "Guillain–Barré syndrome, Löfgren syndrome, Behçet disease.",
        "Ödem beider Beine, Größe 12 cm. ÖDEM BEIDER BEINE, GRÖSSE 12 CM.",
        "Klinik für Radiologie, Universitätsklinikum. Rückenschmerzen seit 2 Wochen.",
    ],
)
def test_non_ascii_words_are_not_phi(text: str, form: str) -> None:
    assert Deidentifier(KEY).find_phi(_NFD(form, text)) == []


def test_a_cut_span_keeps_the_accent_before_the_winner() -> None:
    """resolve_overlaps trimmed a cut span back to a letter or digit, so the combining accent of
    a decomposed "Noé" right before the winner was left out of the name."""
    text = _NFD("NFD", "Seen by Noé 03/14/2021.")
    name, date = PhiSpan("NAME", 8, 14), PhiSpan("DATE", 13, 23)
    assert resolve_overlaps([(30, name), (60, date)], text) == [PhiSpan("NAME", 8, 12), date]
    assert text[8:12] == _NFD("NFD", "Noé")


def test_a_name_cut_after_its_accent_is_still_found_again() -> None:
    """The cut name "Noe" (its accent trimmed off) was looked for again as "noe", which is not
    the decomposed "Noé" of the next sentence: that one was left in the output."""
    text = _NFD("NFD", "Noé 03/14/2021 follow-up. Noé agreed.")
    backend = lambda t: [PhiSpan("NAME", 0, t.index("/"))]  # noqa: E731
    out = Deidentifier(KEY, backends=[backend]).text(text, "p")
    assert out.text.isascii(), out.text
    assert [s.type for s in out.spans] == ["NAME", "DATE", "NAME"]


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize(
    "text",
    [
        "Seen by Dr. Zoë Oakwood Clinic. Zoë agreed.",
        "Seen by Dr. Tamsin Oakwood Clinic. Tamsin agreed.",
        "Dr. Zoë Springfield, IL 62704. Zoë agreed.",
    ],
)
def test_a_name_taken_into_an_institution_or_city_is_still_found_elsewhere(
    text: str, form: str
) -> None:
    """An institution or city that took in the name after "Dr." hid it from propagation: the
    name's next occurrence ("Zoë agreed.") was left. With wider letters this now also happened
    to names such as "Żaneta" or a decomposed "Zoë", which the narrow patterns had left out."""
    text = _NFD(form, text)
    out = Deidentifier(KEY).text(text, "p")
    assert out.text.endswith(" agreed.") and out.text.isascii(), out.text
    assert "Tamsin" not in out.text and out.spans[-1].type == "NAME"


def test_capitals_before_saint_are_not_a_street() -> None:
    """In capitals "2003 AT ST." passed for a street address: it took the year from the date and
    the start of "ST. MARY'S MEDICAL CENTER", which was then dropped and left in the output."""
    text = "COMPARISON: RADIOGRAPHS OF NOVEMBER 15-17, 2003 AT ST. MARY'S MEDICAL CENTER."
    spans = {(s.type, text[s.start : s.end]) for s in Deidentifier(KEY).find_phi(text)}
    assert spans == {("DATE", "NOVEMBER 15-17, 2003"), ("INSTITUTION", "ST. MARY'S MEDICAL CENTER")}
    street = "LIVES AT 1234 OAK ST."  # a street in capitals still is one
    assert [(s.type, street[s.start : s.end]) for s in Deidentifier(KEY).find_phi(street)] == [
        ("ADDRESS", "1234 OAK ST.")
    ]


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_initial_and_non_ascii_surname_without_a_cue(form: str) -> None:
    ascii_text = "J. Miller reviewed the films."
    assert [ascii_text[s.start : s.end] for s in Deidentifier(KEY).find_phi(ascii_text)] == [
        "J. Miller"
    ]
    text = _NFD(form, "J. Müller reviewed the films. Ö. Kowalczyk agreed.")
    assert Deidentifier(KEY).text(text, "p").text.isascii()


def test_dicom_and_structured_dates_over_89_years_old_are_aggregated() -> None:
    """A shifted date kept a year that told an age over 89 (1925 in 2025): it is now written
    in the reference year less 90, keeping its shifted day (29 February: the 28th)."""
    from datetime import date, datetime

    from meddata.deid import structured
    from meddata.deid.dates import aggregated

    assert _shift_da("19250314", 10, "DA", 1935) == "19350304"
    assert _shift_da("19250314-20210401", 10, "DA", 1935) == "19350304-20210322"
    assert _shift_da("19250314101500", 10, "DT", 1935) == "19350304101500"
    assert _shift_da("19360110", 30, "DA", 1935) == "19351211"  # 89 years: shifted only
    assert aggregated(datetime(1924, 2, 29, 8), 1935) == datetime(1935, 2, 28, 8)
    assert aggregated(date(1924, 2, 29), 1936) == date(1936, 2, 29)
    d = Deidentifier(KEY, DeidOptions(reference_year=2025))
    moved = d.shift_date(date(1925, 3, 14), "p")
    assert structured.shift_date(d, date(1925, 3, 14), "p") == moved.replace(year=1935)
    assert structured.shift_date(d, date(1990, 3, 14), "p") == d.shift_date(date(1990, 3, 14), "p")
    # a placeholder (1900-01-01) is no one's date: kept (shifted, it would tell the shift)
    assert structured.shift_date(d, date(1900, 1, 1), "p") == date(1900, 1, 1)
