"""Keys, pseudonyms, date shifts and UIDs: deterministic, keyed, never leaking the key."""

from __future__ import annotations

import os
import pickle
import stat
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meddata.deid import Deidentifier, DeidKeyError, DeidOptions, load_or_create_key
from meddata.errors import MeddataError, UsageError

KEY = b"k" * 32
OTHER = b"o" * 32
ids = st.text(min_size=1, max_size=40)


def test_key_created_beside_not_inside_the_output(tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    with pytest.warns(UserWarning, match="Keep it secret") as record:
        key, path, created = load_or_create_key(None, out)
    assert created and path == tmp_path / "dataset.deid-key"
    assert out not in path.parents
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key.hex() not in str(record[0].message)
    again, again_path, created_again = load_or_create_key(None, out)
    assert (again, again_path, created_again) == (key, path, False)
    given_key, _, created3 = load_or_create_key(path, tmp_path / "elsewhere")
    assert given_key == key and not created3


def test_bad_key_files_raise_usage_errors(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abcd")
    with pytest.raises(DeidKeyError) as info:
        load_or_create_key(short, tmp_path)
    assert isinstance(info.value, UsageError) and "abcd" not in str(info.value)
    with pytest.raises(MeddataError):
        load_or_create_key(tmp_path / "missing", tmp_path)
    with pytest.raises(MeddataError):
        Deidentifier(b"short")


def test_fingerprint_is_public_and_not_the_key() -> None:
    d = Deidentifier(KEY)
    assert d.key_fingerprint.startswith("sha256:") and len(d.key_fingerprint) == 23
    assert KEY.hex() not in d.key_fingerprint and KEY.hex() not in repr(d)
    assert Deidentifier(OTHER).key_fingerprint != d.key_fingerprint
    summary = d.profile_summary()
    assert summary["key_fingerprint"] == d.key_fingerprint
    assert summary["options"]["date_shift_range"] == [30, 365]


def test_picklable_and_equal_across_instances() -> None:
    d = Deidentifier(KEY, DeidOptions(date_shift_range=(10, 20)))
    clone = pickle.loads(pickle.dumps(d))
    assert clone.options == d.options
    assert clone.person_id("p") == d.person_id("p")
    assert clone.text("Dr. Smith on 3/4/2021", "p") == d.text("Dr. Smith on 3/4/2021", "p")


def test_options_validated() -> None:
    with pytest.raises(UsageError):
        DeidOptions(date_shift_range=(10, 5))


@settings(max_examples=50, deadline=None)
@given(ids)
def test_pseudonyms_are_stable_and_in_range(source: str) -> None:
    a, b = Deidentifier(KEY), Deidentifier(KEY)
    assert a.person_id(source) == b.person_id(source)
    assert 1 <= a.person_id(source) <= 2**63 - 1
    pseudo = a.person_pseudonym(source)
    assert pseudo == b.person_pseudonym(source) and len(pseudo) == 13 and pseudo[0] == "P"
    assert 30 <= a.date_shift_days(source) <= 365


@settings(max_examples=50, deadline=None)
@given(ids, ids)
def test_different_keys_give_unlinkable_pseudonyms(x: str, y: str) -> None:
    a, b = Deidentifier(KEY), Deidentifier(OTHER)
    assert a.person_id(x) != b.person_id(x)
    assert a.person_pseudonym(x) != b.person_pseudonym(x)
    if x != y:
        assert a.person_id(x) != a.person_id(y)


@settings(max_examples=50, deadline=None)
@given(ids, st.dates(min_value=date(1901, 1, 1)), st.dates(min_value=date(1901, 1, 1)))
def test_date_intervals_within_a_person_are_preserved(person: str, d1: date, d2: date) -> None:
    d = Deidentifier(KEY)
    s1, s2 = d.shift_date(d1, person), d.shift_date(d2, person)
    assert s2 - s1 == d2 - d1
    assert timedelta(days=30) <= d1 - s1 <= timedelta(days=365)
    dt = datetime(2020, 5, 6, 7, 8, 9)
    shifted = d.shift_date(dt, person)
    assert isinstance(shifted, datetime) and shifted.time() == dt.time()


@settings(max_examples=50, deadline=None)
@given(st.from_regex(r"1\.2\.[0-9]{1,10}(\.[0-9]{1,10}){0,5}", fullmatch=True))
def test_uid_remapping(uid: str) -> None:
    a = Deidentifier(KEY).uid(uid)
    assert a == Deidentifier(KEY).uid(uid) and a != Deidentifier(OTHER).uid(uid)
    assert a.startswith("2.25.") and len(a) <= 64 and a[5:].isdigit()


def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path: Path) -> None:
    import warnings

    from meddata.deid.keys import read_key

    key = tmp_path / "site.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    with pytest.warns(UserWarning, match="can be read by other users.*chmod 600"):
        assert len(read_key(key)) == 32
    key.chmod(0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_key(key)
