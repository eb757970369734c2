"""Clinical-text PHI recognition, surrogates and the evaluation corpus."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meddata.deid import Deidentifier, PhiSpan
from meddata.deid.backends import huggingface_recogniser
from meddata.deid.corpus import PHI_TYPES, generate_corpus
from meddata.deid.dates import shift_date_text
from meddata.deid.evaluate import evaluate, markdown_table
from meddata.deid.recognizer import find_phi
from meddata.errors import UsageError

KEY = b"t" * 32


def _found(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for span in find_phi(text):
        out.setdefault(span.type, []).append(text[span.start : span.end])
    return out


@pytest.mark.parametrize(
    "text,phi_type,value",
    [
        ("Exam date: 03/14/2021.", "DATE", "03/14/2021"),
        ("Prior study from March 3rd, 2019 is compared.", "DATE", "March 3rd, 2019"),
        ("Comparison: 14-MAR-2019.", "DATE", "14-MAR-2019"),
        ("Seen in clinic on the 3rd for follow-up.", "DATE", "3rd"),
        ("Admitted March 3-5, 2021.", "DATE", "March 3-5, 2021"),
        ("Outside films from June 2020 reviewed.", "DATE", "June 2020"),
        ("Results called at 14:35 to the ED.", "TIME", "14:35"),
        ("Signed 9:05 p.m. by the resident.", "TIME", "9:05 p.m."),
        ("Dictated by: Rosalind Ferreira-Okafor, MD", "NAME", "Rosalind Ferreira-Okafor"),
        ("Discussed with Dr. Hope Brown by phone.", "NAME", "Hope Brown"),
        ("Referring physician: SMITH^JOHN", "NAME", "SMITH^JOHN"),
        ("Results called to kwame mensah at bedside.", "NAME", "kwame mensah"),
        ("MRN: 00412345 Acc#: RA-2021-0012345", "ID", "00412345"),
        ("Accession number CXR-2021-004512 pending.", "ID", "CXR-2021-004512"),
        ("Fax: (617) 555-0199 for records.", "PHONE", "(617) 555-0199"),
        ("Email jane.doe@example.com with questions.", "EMAIL", "jane.doe@example.com"),
        ("Portal: https://portal.mercy.org/p/123.", "URL", "https://portal.mercy.org/p/123"),
        ("Login from 10.12.4.200 was recorded.", "IP", "10.12.4.200"),
        ("Lives at 1234 Oak Street, Apt 4B.", "ADDRESS", "1234 Oak Street, Apt 4B"),
        ("Address: 56 Elm Ave\nSpringfield, IL 62704", "CITY", "Springfield"),
        ("Address: 56 Elm Ave\nSpringfield, IL 62704", "ZIP", "62704"),
        ("A 93-year-old woman with dyspnea.", "AGE", "93"),
        (
            "Transferred from St. Mary's Medical Center today.",
            "INSTITUTION",
            "St. Mary's Medical Center",
        ),
        ("Medtronic pacemaker, serial number PJN123456.", "DEVICE", "PJN123456"),
    ],
)
def test_recognises_each_phi_type(text: str, phi_type: str, value: str) -> None:
    assert value in _found(text).get(phi_type, [])


@pytest.mark.parametrize(
    "text",
    [
        "There is a 5 mm nodule. Compression of T4. Disc bulge at C5-C6.",
        "Grade 2 anterolisthesis. This May represent atelectasis.",
        "Drainage catheter in place. Mark the site. Brown adipose tissue is noted.",
        "BP 128/76. Strength 5/5. A 2/6 systolic murmur. Pain 3/10. Ratio 2:1.",
        "A 67-year-old man. Lesion 1.2 x 3.4 cm (series 4, image 112). CPT 71046.",
        "Follow up in clinic. Young adult pattern. Gray matter normal. We hope to improve.",
        "Dilation of the 4th ventricle. Fracture of the 3rd rib.",
    ],
)
def test_distractors_are_not_phi(text: str) -> None:
    assert find_phi(text) == []


def test_surrogates_are_readable_and_consistent_within_a_person() -> None:
    d = Deidentifier(KEY)
    note = "Mr. Okafor seen 03/14/2021 and 03/20/2021 by Dr. Lindqvist. Okafor improving."
    out = d.text(note, "person-1")
    assert "Okafor" not in out.text and "Lindqvist" not in out.text
    surrogate = d.text("Dr. Lindqvist", "person-1").text
    assert surrogate in out.text  # same name, same surrogate
    shift = d.date_shift_days("person-1")
    first = (date(2021, 3, 14) - timedelta(days=shift)).strftime("%m/%d/%Y")
    second = (date(2021, 3, 20) - timedelta(days=shift)).strftime("%m/%d/%Y")
    assert first in out.text and second in out.text  # the 6-day interval survives
    assert [s.type for s in out.spans] == ["NAME", "DATE", "DATE", "NAME", "NAME"]
    for span in out.spans:  # offsets refer to the ORIGINAL text
        assert note[span.start : span.end] in ("Okafor", "03/14/2021", "03/20/2021", "Lindqvist")
    counts = d.take_counts()
    assert counts["NAME"] == 4 and counts["DATE"] == 2  # 3 in the note + 1 in the check above


def test_extra_names_and_backends() -> None:
    d = Deidentifier(KEY, backends=[lambda t: [PhiSpan("NAME", 0, 5)]])
    out = d.text("Zorba was seen; zorba is well.", "p", extra_names=["Zorba"])
    assert "orba" not in out.text.lower()
    with pytest.raises(UsageError):
        huggingface_recogniser(__import__("pathlib").Path("/nonexistent-model"))


@pytest.mark.parametrize(
    "text,expected",
    [
        ("03/14/2021", "02/02/2021"),
        ("3/14/21", "2/2/21"),
        ("2021-03-14", "2021-02-02"),
        ("March 14, 2021", "February 2, 2021"),
        ("Monday, March 15, 2021", "Wednesday, February 3, 2021"),
        ("14-MAR-2021", "2-FEB-2021"),
        ("MARCH 2021", "FEBRUARY 2021"),
        ("20210314", "20210202"),
        ("14th of March", "3rd of February"),
        ("March 3-5, 2021", "January 22-24, 2021"),
        ("not a date", "[DATE]"),
    ],
)
def test_date_text_shift_keeps_the_format(text: str, expected: str) -> None:
    assert shift_date_text(text, 40) == expected


@settings(max_examples=50, deadline=None)
@given(st.dates(min_value=date(1950, 1, 1), max_value=date(2049, 12, 31)), st.text(max_size=12))
def test_text_dates_shift_like_structured_dates(day: date, person: str) -> None:
    d = Deidentifier(KEY)
    out = d.text(f"Seen on {day.month}/{day.day}/{day.year}.", person).text
    expected = d.shift_date(day, person)
    assert out == f"Seen on {expected.month}/{expected.day}/{expected.year}."


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_deidentifying_twice_with_the_same_key_is_stable(seed: int) -> None:
    doc = generate_corpus(1, seed)[0]
    assert Deidentifier(KEY).text(doc.text, "p") == Deidentifier(KEY).text(doc.text, "p")


def test_corpus_is_seeded_and_its_gold_spans_are_sane() -> None:
    docs = generate_corpus(40, 3)
    assert [d.text for d in docs] == [d.text for d in generate_corpus(40, 3)]
    assert docs[0].text != generate_corpus(1, 4)[0].text
    seen = set()
    for doc in docs:
        last = 0
        for span in doc.spans:
            assert span.type in PHI_TYPES and last <= span.start < span.end <= len(doc.text)
            assert doc.text[span.start : span.end].strip() == doc.text[span.start : span.end]
            last = span.end
            seen.add(span.type)
    assert seen == set(PHI_TYPES)


def test_recall_and_precision_on_a_fresh_corpus_seed() -> None:
    report = evaluate(generate_corpus(200, 424242), find_phi)
    overall = report.overall.as_dict()
    assert overall["entity_recall"] >= 0.99 and overall["entity_precision"] >= 0.90
    for phi_type, score in report.per_type.items():
        if score.gold_entities:
            assert score.as_dict()["entity_recall"] >= 0.97, phi_type
    assert "| **overall** |" in markdown_table(report)
