"""Clinical-text PHI recognition, surrogates and the evaluation corpus."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meddata.deid import Deidentifier, PhiSpan, surrogates
from meddata.deid.backends import huggingface_recogniser
from meddata.deid.corpus import PHI_TYPES, generate_corpus
from meddata.deid.dates import shift_date_text
from meddata.deid.evaluate import evaluate, markdown_table
from meddata.deid.names import fold_word
from meddata.deid.recognizer import find_phi
from meddata.deid.spans import resolve_overlaps
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
        ("14th of March", "2nd of February"),  # as "March 14, 2021": no 29 February crossed
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


# -- names in any script: the surrogate keeps nothing of the original ---------------------------

_UPPER_LATIN = "ABCDEFGHIJKLMNOPRSTUVWZÀÁÂÄÅÇÈÉÊËÍÎÏÑÒÓÔÖØÚÛÜÝŁŃŚŹŻŐŰČŠŽĆĘĄ"
_CASED_SCRIPTS = (
    (_UPPER_LATIN, _UPPER_LATIN.lower() + "ß"),
    ("АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯ", "абвгдежзийклмнопрстуфхцчшщыьэюя"),
    ("ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩΆΈΉΊΌΎΏ", "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώ"),
)
_CASELESS = (
    "张王李赵刘陈杨黄周吴伟芳娜敏静秀英华慧明",
    "김이박최정민준서연지현",
    "محمدعليحسنفاطمة",
)
_CONSONANTS, _VOWEL_SIGNS = "कखगचजटडतदनपबमयरलवशसह", ["", *"ािीुूेैोौं्"]  # signs are marks
_DEVANAGARI = st.tuples(st.sampled_from(_CONSONANTS), st.sampled_from(_VOWEL_SIGNS))


@st.composite
def _name_word(draw: st.DrawFn, min_size: int = 1) -> str:
    kind = draw(st.sampled_from(["cased", "cased", "caseless", "devanagari"]))
    if kind == "cased":
        upper, lower = draw(st.sampled_from(_CASED_SCRIPTS))
        first = draw(st.sampled_from(upper))
        rest = draw(st.text(st.sampled_from(lower), min_size=max(0, min_size - 1), max_size=9))
        word = first + rest
        return draw(st.sampled_from([word, word, word.upper(), word.lower()]))
    if kind == "caseless":
        alphabet = draw(st.sampled_from(_CASELESS))
        return draw(st.text(st.sampled_from(alphabet), min_size=max(1, min_size), max_size=4))
    syllables = draw(st.lists(_DEVANAGARI, min_size=max(1, min_size), max_size=4))
    return "".join(c + s for c, s in syllables)


@st.composite
def _person_name(draw: st.DrawFn) -> str:
    # The first word has a letter beyond ASCII: an ASCII one may be an ordinary word ("Pa").
    first = draw(_name_word(min_size=2).filter(lambda w: not w.isascii()))
    words = [first, *draw(st.lists(_name_word(), max_size=3))]
    seps = [draw(st.sampled_from([" ", " ", "-", "^", ", "])) for _ in words[1:]]
    name = words[0] + "".join(s + w for s, w in zip(seps, words[1:], strict=True))
    return unicodedata.normalize(draw(st.sampled_from(["NFC", "NFC", "NFD"])), name)


_NAME_SEP_RE = re.compile(r"[ ^,]+")


@settings(max_examples=300, deadline=None)
@given(_person_name())
def test_name_surrogates_keep_no_letter_of_any_script(original: str) -> None:
    """Every letter of a name, in any script, is replaced: the surrogate is plain ASCII, has as
    many words, none of them equal (ignoring case and accents) to the word it stands for, and
    each word's fake is the same wherever the word occurs and however it is normalised."""
    fake = surrogates.name(KEY, original)
    assert fake.isascii()
    words, fakes = _NAME_SEP_RE.split(original), _NAME_SEP_RE.split(fake)
    assert len(fakes) == len(words)
    for word, word_fake in zip(words, fakes, strict=True):
        assert fold_word(word) != fold_word(word_fake)
        assert surrogates.name(KEY, word) == word_fake  # a word's fake ignores its neighbours
    for form in ("NFC", "NFD"):
        assert surrogates.name(KEY, unicodedata.normalize(form, original)) == fake


@settings(max_examples=200, deadline=None)
@given(_person_name(), st.sampled_from(["Seen by Dr. {}.", "Dictated by: {}, MD", "Pt name: {}"]))
def test_detected_names_in_any_script_leave_nothing_behind(original: str, form: str) -> None:
    """The name after a cue is found from its first word, whole, and every NAME span found is
    replaced by an ASCII surrogate that shares no word with it, position by position."""
    text = form.format(original)
    out = Deidentifier(KEY).text(text, "p")
    names = [s for s in out.spans if s.type == "NAME"]
    assert names and names[0].start == text.index(original)
    rebuilt, pos = [], 0
    for span in out.spans:
        value = text[span.start : span.end]
        fake = surrogates.surrogate(KEY, span.type, value, Deidentifier(KEY).date_shift_days("p"))
        rebuilt += [text[pos : span.start], fake]
        pos = span.end
        if span.type == "NAME":
            assert fake.isascii()
            for word, word_fake in zip(
                _NAME_SEP_RE.split(value), _NAME_SEP_RE.split(fake), strict=True
            ):
                assert fold_word(word) != fold_word(word_fake)
    assert out.text == "".join(rebuilt) + text[pos:]
    first_word = _NAME_SEP_RE.split(original)[0]  # found whole, combining marks included
    assert names[0].end >= text.index(original) + len(first_word)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["ID", "DEVICE", "ZIP", "OTHER", "PHONE"]))
def test_shaped_surrogates_keep_no_letter_or_digit_of_any_script(value: str, phi_type: str) -> None:
    """IDs, devices, ZIPs, phones and spans of unknown type keep their layout (punctuation,
    spacing) but no letter, digit or combining mark of any script."""
    out = surrogates.surrogate(KEY, phi_type, value, 0)
    kept = [c for c in value if unicodedata.category(c)[0] != "M"]
    assert len(out) == len(kept)
    for before, after in zip(kept, out, strict=True):
        if before.isalnum():
            assert after.isascii() and after.isalnum()
            assert after.isdigit() == (before.isdigit() or not before.isalpha())
        else:
            assert after == before


def test_ascii_name_surrogates_are_unchanged_by_the_non_ascii_fix() -> None:
    """Pinned before names of every script were replaced whole: ASCII names keep their
    surrogates byte for byte (except a word that was its own surrogate, e.g. "H" here)."""
    key = b"t" * 32
    pinned = {
        "Okafor": "Kilbride",
        "SMITH^JOHN": "INGRAM^OAKLEY",
        "kwame mensah": "ellwood merriweather",
        "Rosalind Ferreira-Okafor": "Fairbairn Ingram",
        "O'Brien, J.": "Zellweger, Y.",
        "A. B. Jones": "W. P. Southgate",
        "Mary-Kate O’Neil": "Draycott Gatling",
    }
    assert {text: surrogates.name(key, text) for text in pinned} == pinned
    assert surrogates.name(key, "H") != "H" and surrogates.name(key, "T") != "T"


# -- the pattern detectors: values in any cased script are found and replaced whole -------------

_UPPER_ALPHABETS = tuple(upper for upper, _ in _CASED_SCRIPTS)


@st.composite
def _capitalised_word(draw: st.DrawFn) -> str:
    """A capitalised word of a cased script with a letter beyond ASCII ("Łąkowa", "Ζυρίχη")."""
    upper, lower = draw(st.sampled_from(_CASED_SCRIPTS))
    first = draw(st.sampled_from(upper))
    word = first + draw(st.text(st.sampled_from(lower), min_size=2, max_size=9))
    return word if not word.isascii() else "Ł" + word[1:]


_PLACE_FORMS = (
    ("Address: 56 Elm Ave\n{}, IL 62704", "CITY"),
    ("Lives at 12 {} Street, Apt 4.", "ADDRESS"),
    ("Transferred from {} Medical Center today.", "INSTITUTION"),
    ("Seen at University of {} Hospital.", "INSTITUTION"),
    ("Seen at Hospital of {} today.", "INSTITUTION"),
)


def _assert_replaced_whole(text: str, value: str, phi_type: str) -> None:
    start = text.index(value)
    spans = find_phi(text)
    assert any(
        s.type == phi_type and s.start <= start and start + len(value) <= s.end for s in spans
    ), (phi_type, [(s.type, text[s.start : s.end]) for s in spans])
    out = Deidentifier(KEY).text(text, "p").text
    assert out.isascii(), out  # the rest of the text is ASCII: no letter or mark is left


@settings(max_examples=200, deadline=None)
@given(_capitalised_word(), st.sampled_from(_PLACE_FORMS), st.sampled_from(["NFC", "NFD"]))
def test_places_in_any_cased_script_are_replaced_whole(
    word: str, form: tuple[str, str], normal_form: str
) -> None:
    """A city before its state, a street name, an institution's name: a word of any cased
    script, composed or decomposed, is found whole (the patterns used to know only A-Z)."""
    word = unicodedata.normalize(normal_form, word)
    _assert_replaced_whole(form[0].format(word), word, form[1])


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_UPPER_ALPHABETS).flatmap(
        lambda upper: st.text(st.sampled_from(upper), min_size=2, max_size=4)
    ),
    st.integers(min_value=0, max_value=10**9),
    st.sampled_from(
        [
            "MRN: {prefix}{number:07d}",
            "Accession number {prefix}-2021-{number:06d} pending.",
            "Outside reference {prefix}{number:09d} on file.",
            "Pacemaker, serial number {prefix}{number:06d}.",
        ]
    ),
    st.sampled_from(["NFC", "NFD"]),
)
def test_identifiers_with_letters_of_any_cased_script_are_replaced_whole(
    prefix: str, number: int, form: str, normal_form: str
) -> None:
    """Identifiers with a non-ASCII letter prefix ("ÅB1234567", "ŻÓ-2021-004512") kept that
    prefix, or were missed altogether."""
    if prefix.isascii():
        prefix = "Å" + prefix[1:]
    text = unicodedata.normalize(normal_form, form.format(prefix=prefix, number=number))
    start = text.index(unicodedata.normalize(normal_form, prefix))
    end = start + len(text[start:].split(" ")[0].rstrip("."))
    _assert_replaced_whole(text, text[start:end], "DEVICE" if "serial" in form else "ID")


_SPAN_TEXT = st.text(st.sampled_from("ab1 .,-\u0301\u0308"), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(_SPAN_TEXT, st.data())
def test_resolved_spans_keep_their_combining_marks(text: str, data: st.DataObject) -> None:
    """resolve_overlaps gives sorted, non-overlapping spans, each the start of a candidate; a
    span cut by a winner ends at a letter, digit or combining mark and leaves none of them
    outside every span (it used to leave the accent right before the winner)."""
    bounds = st.integers(min_value=0, max_value=len(text))
    raw = data.draw(
        st.lists(st.tuples(st.integers(1, 3), st.sampled_from("AB"), bounds, bounds), max_size=6)
    )
    candidates = [(p, PhiSpan(t, min(a, b), max(a, b))) for p, t, a, b in raw]
    spans = resolve_overlaps(candidates, text)
    covered = bytearray(len(text) + 1)
    for left, right in zip(spans, spans[1:], strict=False):
        assert left.end <= right.start
    for span in spans:
        assert any(
            c.type == span.type and c.start == span.start and span.end <= c.end
            for _, c in candidates
        )
        covered[span.start : span.end] = b"\x01" * (span.end - span.start)

    def in_word(char: str) -> bool:
        return char.isalnum() or unicodedata.category(char)[0] == "M"

    for span in spans:
        cut = [c for _, c in candidates if c.start == span.start and c.end > span.end]
        if not cut or any(c.end == span.end for _, c in candidates if c.start == span.start):
            continue
        assert in_word(text[span.end - 1])
        nxt = span.end
        while nxt < len(text) and not covered[nxt]:
            assert not in_word(text[nxt]), (text, spans)
            nxt += 1
