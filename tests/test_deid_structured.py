"""Structured-field helpers used by adapters."""

from __future__ import annotations

from datetime import date, datetime

from meddata.deid import Deidentifier, birth_year, cap_age, structured, zip3

KEY = b"s" * 32


def test_birth_year() -> None:
    assert birth_year(date(1950, 6, 1)) == 1950
    assert birth_year(datetime(1950, 6, 1, 3)) == 1950
    assert birth_year("19500601") == 1950 and birth_year("1950-06-01") == 1950
    assert birth_year(1950) == 1950
    assert birth_year(None) is None and birth_year("unknown") is None


def test_cap_age() -> None:
    assert cap_age(45) == 45 and cap_age("89") == 89 and cap_age(89.9) == 89
    assert cap_age(90) == 90 and cap_age(104) == 90 and cap_age("97.5") == 90
    assert cap_age(None) is None and cap_age("n/a") is None and cap_age(-1) is None


def test_zip3() -> None:
    assert zip3("02115") == "021" and zip3("02115-1234") == "021" and zip3(2115) == "021"
    assert zip3("03601") == "000"  # a restricted 3-digit prefix
    assert zip3("8901") is None and zip3(None) is None and zip3("abcde") is None


def test_pseudonymise_and_shift_count_by_type() -> None:
    d = Deidentifier(KEY)
    pid = structured.pseudonymise_person(d, "12345")
    assert pid == d.person_id("12345")
    mrn = structured.pseudonymise_id(d, "mrn", "A-77")
    assert mrn == d.pseudonym("mrn", "A-77") and mrn != d.pseudonym("visit", "A-77")
    assert structured.pseudonymise_id(d, "mrn", "") is None
    shifted = structured.shift_date(d, date(2020, 1, 31), "12345")
    assert shifted == d.shift_date(date(2020, 1, 31), "12345")
    assert structured.shift_date(d, None, "12345") is None
    note = structured.free_text(d, "Seen by Dr. Carter on 01/31/2020.", "12345")
    assert note is not None and "Carter" not in note and "01/31/2020" not in note
    counts = d.take_counts()
    assert counts == {"DATE": 2, "ID": 1, "NAME": 1, "PERSON_ID": 1}
    assert d.take_counts() == {}
