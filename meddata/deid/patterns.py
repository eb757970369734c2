"""Regular-expression detectors for PHI other than person names. Compiled once at import."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterator

from meddata.deid.dates import HOLIDAY, current_year
from meddata.deid.lexicon import CLINICAL_WORDS, COUNTRIES, NOT_NAMES, US_STATE_NAMES, US_STATES
from meddata.deid.spans import PhiSpan

_I = re.IGNORECASE


def _category_codes() -> dict[str, list[int]]:
    """The non-ASCII code points of the BMP by kind: upper-case ("Lu", with title case),
    lower-case ("Ll") and cased or modifier letters ("Lc": Lu, Ll, Lt, Lm; the letters a word
    that starts with a capital goes on with), decimal digits ("Nd") and combining marks ("M").
    ``re`` has no ``\\p{Lu}``, and a value such as "Zürich, IL" or "12 Łąkowa Street" starts
    with a capital beyond ``A-Z``."""
    category = unicodedata.category
    kinds: dict[str, list[int]] = {"Lu": [], "Ll": [], "Lc": [], "Nd": [], "M": []}
    for code in range(0x80, 0x10000):
        cat = category(chr(code))
        if cat in ("Lu", "Lt"):
            kinds["Lu"].append(code)
        if cat in ("Lu", "Ll", "Lt", "Lm"):
            kinds["Lc"].append(code)
        if cat in ("Ll", "Nd"):
            kinds[cat].append(code)
        elif cat[0] == "M":
            kinds["M"].append(code)
    return kinds


def _cls(extra: str, *kinds: str) -> str:
    """A regex character class: the code points of ``kinds`` and ``extra`` (a class body).

    BMP only: ``re`` looks a BMP character up in one table but compares it with every range
    beyond, one by one, which made each miss (most characters of a note) several times slower.
    Letters and marks beyond the BMP (historic scripts, mathematical letters) are rare in notes;
    where a pattern needs only "a letter" it uses ``[^\\W\\d_]``, which has them all (and is
    what case-insensitive patterns use: ``re`` compiles a large class slowly under IGNORECASE).
    """
    codes = sorted({c for kind in kinds for c in _KINDS[kind]})
    parts = []
    start = prev = -2
    for code in [*codes, -1]:
        if code == prev + 1:
            prev = code
            continue
        if start >= 0:
            parts.append(chr(start) if start == prev else f"{chr(start)}-{chr(prev)}")
        start = prev = code
    return f"[{''.join(parts)}{extra}]"


# Where a pattern means "a word", a letter of any script (values are not all ASCII: "ÅB12345",
# "Żółkiewski"), and combining marks inside it (decomposed text: "Zu\u0308rich").
_KINDS = _category_codes()
_LET = r"[^\W\d_]"  # a letter of any script
_UP = _cls("A-Z", "Lu")  # an upper-case letter
_UPB = _UP[1:-1]  # the same, as a class body
_M = _cls("", "M")  # a combining mark
_MB = _M[1:-1]  # the same, as a class body
_LETM = rf"(?:{_LET}|{_M})"  # a letter or a combining mark
_WORDH = rf"(?:[^\W_]|[{_MB}-])"  # a letter, digit, combining mark or hyphen
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)"
_ORD = r"(?:st|nd|rd|th)"
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON_NUM = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:19\d\d|20\d\d)"
# In a full date (day, month and year) an 18xx year is a date too: only there, since a bare
# "9/1800" or "May 1850" is far more often a clinical number than a date.
_YEAR_FULL = r"(?:1[89]\d\d|20\d\d)"
_YEAR2 = r"(?:\d\d)"

# Dates inside tokens ("study_2021-03-14", "CXR_20210314.dcm", "2021-03-14T10:22:00Z") count:
# a letter or digit before, or a digit after, is what stops a match, not a word boundary.
_NB = r"(?<![0-9A-Za-z])"
_NA = r"(?![0-9])"
_YEAR_ANY = rf"(?:,?\s+(?:{_YEAR_FULL}|['’]\d\d(?!\d)))"
_DATE_PATTERNS = [
    # 2021-03-14, 2021/03/14, 1931/7/4
    rf"{_NB}{_YEAR_FULL}[-/.]{_MON_NUM}[-/.]{_DAY}{_NA}",
    # 03/14/2021, 3-14-21, 14.03.2021 (an 18xx year with one separator throughout: "1.5/1850"
    # is a lab value)
    rf"{_NB}(?:{_DAY}[/.-]{_DAY}[/.-](?:{_YEAR}|{_YEAR2})"
    rf"|{_DAY}/{_DAY}/18\d\d|{_DAY}-{_DAY}-18\d\d|{_DAY}\.{_DAY}\.18\d\d){_NA}(?![/.]\d)",
    # March 14, 2021 / Mar. 14th 2021 / Monday, March 15, 2021 / March 3-5, 2021 / Mar 14th, '21
    # / Mar-14-2021 / March the 14th, 2021
    rf"\b{_WEEKDAY}?{_MONTH}\.?(?:\s+|\s+the\s+(?={_DAY}{_ORD})|[-/](?={_DAY}[-/,]))"
    rf"{_DAY}{_ORD}?(?:\s*[-–]\s*{_DAY}{_ORD}?)?(?:{_YEAR_ANY}|[-/]{_YEAR_FULL})?(?![0-9A-Za-z])",
    # 14 March 2021 / 14th of March, 2021 / the 8th of March
    rf"\b{_DAY}{_ORD}?\s+(?:of\s+)?{_MONTH}\.?{_YEAR_ANY}?\b",
    # 14-Mar-2021, 14-MAR-21, 14Mar2021, 14MAR2021
    rf"{_NB}(?:{_DAY}[-\s]{_MONTH}[-\s](?:{_YEAR_FULL}|{_YEAR2})|{_DAY}{_MONTH}{_YEAR_FULL}){_NA}",
    # March 2021, Mar-2021, March of 2021
    rf"\b{_MONTH}\.?(?:[\s,-]+|\s+of\s+){_YEAR}\b",
    # 03/2021
    rf"{_NB}{_MON_NUM}/{_YEAR}{_NA}",
    # 20210314 (a DICOM-style date)
    rf"{_NB}{_YEAR_FULL}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]){_NA}",
]
# A holiday with its year ("Christmas Day 2020", "Thanksgiving of 2019"): a date (see dates.py).
# Found from the year (few in a note), then the holiday before it is checked.
_HOLIDAY_YEAR_RE = re.compile(r"(?:19|20)\d\d(?![\w/-]|\.\d)")
_HOLIDAY_YEAR2_RE = re.compile(r"['’]\d\d(?![\w/-]|\.\d)")
_HOLIDAY_RE = re.compile(rf"\b{HOLIDAY}(?:,?[ \t]+(?:of[ \t]+)?|[ \t]+(?=['’]))$", _I)
# A leading look-ahead on the first character lets the regex engine skip most positions fast.
_DATE_NUM_RE = re.compile(
    r"(?=\d)(?:" + "|".join(f"(?:{_DATE_PATTERNS[i]})" for i in (0, 1, 3, 4, 6, 7)) + ")", _I
)
_DATE_WORD_RE = re.compile(
    r"(?=[JFMASONDTWjfmasondtw])(?:" + "|".join(f"(?:{_DATE_PATTERNS[i]})" for i in (2, 5)) + ")",
    _I,
)

# 3/14 without a year: only when nothing around it says it is a score, a ratio or a pressure.
# 3/14 or 14/3 without a year: only when nothing around it says it is a score, a ratio or a
# pressure, and one of the two numbers can be a month.
_SHORT_DATE_RE = re.compile(rf"(?=\d)(?<![\d/.])({_DAY})/({_DAY})(?!\d|[/.]\d|\s*(?:mm|cm|%))")
_SHORT_DATE_VETO = re.compile(
    r"\b(?:strength|murmur|pain|score|grade|scale|ratio|power|vision|bp|blood pressure|dose|tabs?|"
    r"reflex(?:es)?|motor|gcs|apgar|systolic|diastolic|sensation|nihss|mmse|moca|out of|"
    r"lung-rads|bi-rads|ti-rads|pi-rads|series)\b",
    _I,
)
_SENTENCE_SPLIT = re.compile(r"[.;\n]")
_LEADING_PART = re.compile(r"^\w+")
_TRAILING_PART = re.compile(r"\w+$")
_DAY_ONLY_RE = re.compile(
    rf"(?=[Tt])\bthe\s+({_DAY}{_ORD})\b(?!\s+(?:of\b|ventricle|rib|digit|finger|toe|metatarsal|"
    r"metacarpal|intercostal|cranial|nerve|percentile|degree|decade|grade|lumbar|cervical|"
    r"thoracic|sacral|vertebra|disc|time|dose|cycle|day|week|month|trimester|generation|"
    r"compartment|branch|segment|toe|layer))",
    _I,
)

_TIME_RE = re.compile(
    r"(?=\d)\b(?:(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?!\d)(?:\s?[ap]\.?\s?m\.?(?![a-z]))?"
    r"|(?:1[0-2]|0?[1-9])\s?[ap]\.?m\.?(?![a-z])"
    r"|(?:[01]\d|2[0-3])[0-5]\d\s?(?:hours|hrs|h)\b)",
    _I,
)

_PHONE_RE = re.compile(
    r"(?=[\d(+])(?<![\w.])(?:\+?1[\s.-]?)?(?:\(\s*[2-9]\d\d\s*\)\s?|[2-9]\d\d[\s.-])\d{3}[\s.-]\d{4}"
    r"(?:\b|(?=x\d))(?:\s*(?:ext\.?|extension|x)\s*\d{1,5}\b)?",
    _I,
)
# International numbers: a leading + and 8-15 digits in groups ("+44 20 7946 0958").
_INTL_PHONE_RE = re.compile(r"(?<![\w+])\+\d(?:[\s.()-]{0,2}\d){7,14}(?!\d)")
_EXT_RE = re.compile(r"(?=[pPbBeExX])\b(?:pager|beeper|ext\.?|extension|x)\s*#?\s*(\d{4,5})\b", _I)

_EMAIL_RE = re.compile(rf"\b[\w.%+{_MB}-]+@[\w{_MB}-]+(?:\.[\w{_MB}-]+)*\.{_LETM}{{2,}}\b", _I)
_URL_RE = re.compile(
    r"\b(?:https?://|ftp://|www\.)[^\s<>\"')\]]+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|"
    r"io|us|health)(?:/[^\s<>\"')\]]*)?\b",
    _I,
)
_IP_RE = re.compile(r"(?=\d)(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.]*\d)")
# IPv6 in full or compressed form ("2001:db8::ff00:42:8329", "::ffff:10.1.2.3", "fe80::1%eth0"):
# a candidate is checked by ``ipaddress`` and needs three groups (so "12:30:45" or "a::b" are not).
_IPV6_RE = re.compile(
    r"(?=[0-9a-fA-F:])(?<![\w:.])(?:[0-9a-fA-F]{0,4}:){2,7}(?:[0-9a-fA-F]{1,4}|"
    r"\d{1,3}(?:\.\d{1,3}){3})?(?:%[\w-]+)?(?![\w:])"
)
# A network card's address: "00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5e", "001a.2b3c.4d5e".
_MAC_HINT_RE = re.compile(r"[:-][0-9a-fA-F]{2}[:-][0-9a-fA-F]{2}[:-]")
_MAC_DOT_HINT_RE = re.compile(r"\.[0-9a-fA-F]{4}\.")
_MAC_RE = re.compile(
    r"(?=[0-9a-fA-F])\b(?<![:.-])(?:[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}"
    r"|[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4})(?![\w:.-]|\.\w)"
)
# A host name inside a network: on a private or local domain ("pacs01.stmary.local"), or with a
# first label that names a hospital system ("pacs.stmary.ca", "ris-02.mercy.net").
_HOST_RE = re.compile(
    r"(?=[0-9A-Za-z])(?<![\w.@/-])(?:"
    r"(?:[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?\.)+(?i:local|lan|internal|intranet|corp|"
    r"localdomain|private|priv|hosp|home\.arpa)"
    r"|(?i:pacs|ris|emr|ehr|epic|dicom|mirth|hl7|vna|orthanc|dcm4chee|xnat)[0-9A-Za-z-]{0,20}"
    r"(?:\.[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?)+\.[A-Za-z]{2,12})(?![\w-]|\.\w)"
)
_URL_HINT_RE = re.compile(r"://|www\.|\.(?:com|org|net|edu|gov|io|us|health)\b", _I)

_ID_LABEL = (
    r"(?:mrn|mr\s?#|m\.r\.n\.?|medical\s+record(?:\s+(?:number|no\.?|#))?|record\s+(?:number|no\.?|#)|"
    r"acc(?:ession)?(?:\s*(?:number|no\.?|#))?|acc\s?#|encounter(?:\s*(?:number|no\.?|id))?|"
    r"visit\s+(?:number|no\.?|id)|account(?:\s*(?:number|no\.?))?|acct\.?|"
    r"patient\s+id|pt\s+id|subject\s+id|study\s+id|order(?:\s*(?:number|no\.?|id))?|"
    r"requisition|ssn|social\s+security(?:\s+number)?|health\s+plan(?:\s+(?:number|no\.?|id))?|"
    r"member\s+id|policy(?:\s+(?:number|no\.?))?|insurance\s+id|license(?:\s+(?:number|no\.?))?|"
    r"npi|dea|case(?:\s+(?:number|no\.?)|\s*#)|specimen(?:\s+(?:number|no\.?|id))?|"
    r"id(?:\s+(?:number|no\.?))?|identifier|chart(?:\s+(?:number|no\.?))?|"
    # Claims, insurance groups, vehicles (HIPAA's vehicle identifiers: plates and VINs).
    r"claim(?:\s*(?:number|no\.?|#|id))?|group\s*(?:number|no\.?|#|id\b|:)|"
    r"licen[cs]e\s+plate(?:\s*(?:number|no\.?|#))?|plate\s*(?:number|no\.?|#)|"
    r"(?:vehicle\s+)?tag\s*(?:number|no\.?|#|:)|vehicle\s+registration|"
    r"vin(?:\s*(?:number|no\.?|#))?)"
)
_ID_RE = re.compile(
    rf"(?=[maevpsorhilndcgtMAEVPSORHILNDCGT])\b{_ID_LABEL}\s*[#:.]*\s*(?:is\s+|no\.?\s*|number\s*)?"
    rf"((?:{_LET}{_M}*){{0,4}}[-]?\d{_WORDH}{{3,}})\b",
    _I,
)
# "Case 2021-00123", "case 123456" (a bare "case 2" is a case of something).
# (These start with a literal or a plain class, which ``re`` scans for fast; what comes before
# the match is checked in code.)
_CASE_RE = re.compile(r"(?i:c)ase[ \t]+(\d{2,4}-\d{3,8}|\d{5,})(?![\w-])")
# A vehicle identification number: 17 capitals and digits without I, O and Q, its last four
# digits (the check digit is not required), with letters and digits both.
_VIN_RE = re.compile(r"[A-HJ-NPR-Z0-9]{13}[0-9]{4}(?![\w-])")
_SSN_RE = re.compile(r"(?=\d)(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
# A comma before or after is a cell of a CSV line ("Robert Brown,4455661,02/03/1948"), unless
# a digit comes before it (a thousands separator: "1,2345678" is no identifier).
_LONG_NUMBER_RE = re.compile(
    rf"(?=[\d{_UPB}])(?<![\w./-])(?<!\d,)(?:(?:{_UP}{_M}*){{1,4}}-?)?\d{{7,}}(?![\w.]?\d)"
)
_UPMD = _cls("A-Z0-9", "Lu", "M")
_UPMDH = _cls("A-Z0-9-", "Lu", "M")
_MIXED_ID_RE = re.compile(
    # Bounded look-aheads: a long run of short tokens ("A1-A1-…") is not rescanned from every start.
    rf"(?=[0-9{_UPB}])\b(?={_UPMDH}{{0,40}}?\d{{4}})(?={_UPMDH}{{0,40}}?{_UP}{_M}*{_UP})"
    rf"{_UPMD}+(?:-{_UPMD}+)+\b"
)

_DEVICE_RE = re.compile(
    r"(?=[sSlLuUdDmM])\b(?:serial(?:\s+(?:number|no\.?|num))?|s/n|sn|device\s+id|udi|lot(?:\s+(?:number|no\.?))?|"
    rf"model\s+(?:number|no\.?))\s*[#:.]?\s*(?:is\s+)?([^\W_]{_WORDH}{{3,}})\b",
    _I,
)

_STREET_SUFFIX = (
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|lane|ln|court|ct|way|place|pl|"
    r"terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl|row|path|pike|alley)"
)
_STREET_CH = _cls("A-Za-z0-9'’-", "Lc", "Nd", "M")
# In capitals, "… 2003 AT ST. MARY'S" or "AT 1401 HOURS WITH DR. VARGAS" is no street: these
# words would pass for words of a street's name.
_NOT_STREET_WORD = r"(?!(?i:at|in|on|to|from|by|with|for|am|pm|hours|hrs)[ \t])"
_ADDRESS_RE = re.compile(
    rf"(?=[\dPp])\b\d{{1,6}}(?:-?[A-Za-z](?![\w{_MB}]))?[ \t]+(?:(?i:n|s|e|w|ne|nw|se|sw|north|south|east|west|old|new)\.?[ \t]+)?"
    rf"(?:{_NOT_STREET_WORD}[0-9{_UPB}]{_STREET_CH}*[ \t]+){{1,3}}(?i:{_STREET_SUFFIX})\b\.?"
    r"(?:,?[ \t]*(?i:apt|apartment|unit|suite|ste|fl|floor|room|rm|#)\.?[ \t]*#?[ \t]*"
    rf"{_WORDH}+\b)?"
    r"|\b(?i:p\.?\s?o\.?\s*box)\s+\d+\b",
)

_CITY_CH = _cls("A-Za-z'’.-", "Lc", "M")
_STATE_ALT = "|".join(sorted(US_STATES, key=len, reverse=True))
# "Springfield, IL 62704", "Worcester, MA.", "Framingham, Massachusetts.": groups 1 the city,
# 2 a comma, 3 the state's code, 4 a ZIP after it, 5 the state's name, 6 a ZIP after it.
_CITY_STATE_END = r"[ \t]*(?:$|[;)\n]|[.,](?=\s|$))"
_CITY_STATE_RE = re.compile(
    rf"(?={_UP})(?<![\w.'’{_MB}-])((?:{_UP}{_CITY_CH}+[ \t]){{0,2}}{_UP}{_CITY_CH}+)(,?)[ \t]+"
    rf"(?:({_STATE_ALT})\b(?=(,?[ \t]+\d{{5}})|{_CITY_STATE_END})"
    rf"|((?i:{US_STATE_NAMES}))(?=(,?[ \t]+\d{{5}})|{_CITY_STATE_END}))"
)
# Codes that are also credentials or common abbreviations ("Smith, MD", "Study ID", "CXR, CT"):
# a state only before a ZIP.
_CREDENTIAL_STATES = frozenset(
    {"MD", "PA", "DE", "OR", "IN", "ME", "OK", "HI", "OH", "ID", "CT", "MS", "CO", "LA", "DC"}
)
# State names that are also given names ("Smith, Virginia" is a person): a state only before a ZIP.
_GIVEN_NAME_STATES = frozenset({"virginia", "georgia", "washington", "indiana", "montana"})
_CITY_LEAD = frozenset(
    "lives live living seen moved transferred resides residing in at from to near of the "
    "and or by with".split()
)
_ZIP_RE = re.compile(r"(?<![\d-])(\d{5}(?:-\d{4})?)(?![\d-])")
_ZIP_CONTEXT_RE = re.compile(
    rf"(?:\b(?:{_STATE_ALT})|(?i:{US_STATE_NAMES})|(?i:zip(?:[ \t]*code)?|postal[ \t]+code)[ \t]*[:#]?)"
    r",?[ \t]*$"
)

_AGE_RE = re.compile(
    r"(?=[\daA])\b(9\d|1[0-1]\d)(?=\s*-?\s*(?:years?|yrs?|yo\b|y/o|y\.o\.|year-old|-year|yr-old|"
    r"[mf]\b|(?:male|female|man|woman)\b))"
    r"|\b(?:age[ds]?|age:)\s*:?\s*(9\d|1[0-1]\d)\b",
    _I,
)

# Ages over 89 written in words, and "patient is 93" without a unit.
_AGE_WORDS_RE = re.compile(
    r"\b(ninety(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?"
    r"|one\s+hundred(?:\s+(?:and\s+)?(?:one|two|three|four|five|six|seven|eight|nine|ten))?)"
    r"(?=[\s-]*(?:years?|yrs?|yo\b|y/o|year-old))",
    _I,
)
_AGE_IS_RE = re.compile(
    r"\b(?:patient|pt|he|she)\s+(?:is|was)\s+(9\d|1[01]\d)\b(?!\s*(?:%|mm|cm|bpm|kg|lb|mg|ml|/|\.\d))",
    _I,
)

_INSTITUTION_HEAD = (
    r"(?:hospital|medical\s+center|medical\s+centre|health\s+center|health\s+system|"
    r"health\s+clinic|clinic|imaging\s+center|institute|nursing\s+home|urgent\s+care|"
    r"associates|rehabilitation\s+center|rehab\s+center|dialysis\s+center|radiology\s+group|"
    r"medical\s+group|pediatrics|family\s+practice|infirmary|hospice|cancer\s+center|"
    r"surgery\s+center|surgical\s+center|healthcare|health\s+care|care\s+center|"
    r"veterans\s+affairs\s+medical\s+center|va\s+medical\s+center|"
    r"school\s+of\s+medicine|laboratories|pharmacy)"
)
_INSTITUTION_RE = re.compile(
    rf"(?=[hmcinuardspfvlHMCINUARDSPFVL])\b{_INSTITUTION_HEAD}\b"
    rf"(?:\s+of\s+{_LET}(?:{_LET}|['’{_MB}])+(?:\s+{_LET}{_LETM}+)?)?",
    _I,
)


_LOW = _cls("a-z", "Ll")
_LOWMA = _cls("a-z'’", "Ll", "M")
_CASEDMA = _cls("A-Za-z'’", "Lc", "M")
_UNIVERSITY_RE = re.compile(
    r"(?=[UuCc])\b(?:(?:University|College|UNIVERSITY|COLLEGE)[ \t]+(?i:of)[ \t]+"
    rf"(?:{_UP}{_CASEDMA}+[ \t]?){{1,3}}"
    rf"|(?:university|college)[ \t]+of[ \t]+(?:{_LOW}{_LOWMA}+[ \t]?){{1,3}})"
    r"(?:(?i:medical[ \t]+center|hospital|health(?:[ \t]+system)?|school[ \t]+of[ \t]+medicine))?"
)


def _groups(m: re.Match[str]) -> tuple[int, int]:
    for i in range(1, (m.lastindex or 0) + 1):
        if m.group(i) is not None:
            return m.start(i), m.end(i)
    return m.start(), m.end()


def find_dates(text: str) -> Iterator[PhiSpan]:
    """Dates in numeric, month-name, partial, day-only and range forms."""
    for regex in (_DATE_NUM_RE, _DATE_WORD_RE):
        for m in regex.finditer(text):
            yield PhiSpan("DATE", m.start(), m.end())
    for m in _SHORT_DATE_RE.finditer(text):
        if int(m.group(1)) > 12 and int(m.group(2)) > 12:
            continue
        lo, hi = max(0, m.start() - 24), min(len(text), m.end() + 24)
        before, after = text[lo : m.start()], text[m.end() : hi]
        if lo > 0 and text[lo - 1].isalnum():
            before = _LEADING_PART.sub("", before)
        if hi < len(text) and text[hi].isalnum():
            after = _TRAILING_PART.sub("", after)
        before = _SENTENCE_SPLIT.split(before)[-1]
        after = _SENTENCE_SPLIT.split(after)[0]
        if not _SHORT_DATE_VETO.search(before) and not _SHORT_DATE_VETO.search(after):
            yield PhiSpan("DATE", m.start(), m.end())
    for m in _DAY_ONLY_RE.finditer(text):
        yield PhiSpan("DATE", m.start(1), m.end(1))
    years = list(_HOLIDAY_YEAR_RE.finditer(text))
    if "'" in text or "’" in text:
        years += _HOLIDAY_YEAR2_RE.finditer(text)
    for m in years:
        if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_/.-"):
            continue
        holiday = _HOLIDAY_RE.search(text, max(0, m.start() - 40), m.start())
        if holiday is not None:
            yield PhiSpan("DATE", holiday.start(), m.end())


def find_times(text: str) -> Iterator[PhiSpan]:
    """Clock times (24 h, 12 h with am/pm, military "0930 hours")."""
    for m in _TIME_RE.finditer(text):
        yield PhiSpan("TIME", m.start(), m.end())


def find_contacts(text: str) -> Iterator[PhiSpan]:
    """Phone and fax numbers, e-mail addresses, URLs and IP addresses."""
    for m in _PHONE_RE.finditer(text):
        yield PhiSpan("PHONE", m.start(), m.end())
    for m in _INTL_PHONE_RE.finditer(text):
        yield PhiSpan("PHONE", m.start(), m.end())
    for m in _EXT_RE.finditer(text):
        yield PhiSpan("PHONE", m.start(1), m.end(1))
    if "@" in text:
        for m in _EMAIL_RE.finditer(text):
            yield PhiSpan("EMAIL", m.start(), m.end())
    if _URL_HINT_RE.search(text):
        for m in _URL_RE.finditer(text):
            end = m.end()
            while end > m.start() and text[end - 1] in ".,;:!?":
                end -= 1
            yield PhiSpan("URL", m.start(), end)
    for m in _IP_RE.finditer(text):
        if all(int(octet) < 256 for octet in m.group(0).split(".")):
            yield PhiSpan("IP", m.start(), m.end())
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6_RE.finditer(text):
            if _is_ipv6(m.group(0)):
                yield PhiSpan("IP", m.start(), m.end())
    if _HOST_TLD_HINT_RE.search(text) or _HOST_LABEL_HINT_RE.search(text):
        for m in _HOST_RE.finditer(text):
            yield PhiSpan("URL", m.start(), m.end())


# Cheap tests for a host name (a literal "." first; a first letter), before the full pattern.
_HOST_TLD_HINT_RE = re.compile(
    r"\.(?:local|lan|internal|intranet|corp|localdomain|private|priv|hosp|arpa)\b", _I
)
# A name of three labels or more ("ris.mercy.ca"): a host with a hospital system's first label.
_HOST_LABEL_HINT_RE = re.compile(r"\.[0-9A-Za-z-]+\.[A-Za-z]")


def _is_ipv6(candidate: str) -> bool:
    address = candidate.split("%")[0]
    if sum(1 for group in address.split(":") if group) < 3:
        return False
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def find_ids(text: str) -> Iterator[PhiSpan]:
    """Labelled identifiers (MRN, accession, encounter, SSN…), long numbers, device serials."""
    for m in _DEVICE_RE.finditer(text):
        start, end = _groups(m)
        if any(c.isdigit() for c in text[start:end]):
            yield PhiSpan("DEVICE", start, end)
    for m in _ID_RE.finditer(text):
        start, end = _groups(m)
        yield PhiSpan("ID", start, end)
    for m in _SSN_RE.finditer(text):
        yield PhiSpan("ID", m.start(), m.end())
    for m in _LONG_NUMBER_RE.finditer(text):
        yield PhiSpan("ID", m.start(), m.end())
    for m in _CASE_RE.finditer(text):
        if m.start() == 0 or not text[m.start() - 1].isalnum():
            yield PhiSpan("ID", m.start(1), m.end(1))
    for m in _VIN_RE.finditer(text):
        vin = m.group(0)
        if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_-"):
            continue
        if sum(c.isdigit() for c in vin) >= 5 and sum(c.isalpha() for c in vin) >= 2:
            yield PhiSpan("ID", m.start(), m.end())
    if _MAC_HINT_RE.search(text) or _MAC_DOT_HINT_RE.search(text):
        for m in _MAC_RE.finditer(text):
            yield PhiSpan("DEVICE", m.start(), m.end())
    for m in _MIXED_ID_RE.finditer(text):
        yield PhiSpan("ID", m.start(), m.end())


def find_locations(text: str) -> Iterator[PhiSpan]:
    """Street addresses, PO boxes, cities before a state, and ZIP codes."""
    for m in _ADDRESS_RE.finditer(text):
        yield PhiSpan("ADDRESS", m.start(), m.end())
    for m in _CITY_STATE_RE.finditer(text):
        if m.group(3) is not None and m.group(4) is None:  # "Worcester, MA." (no ZIP)
            if m.group(3) in _CREDENTIAL_STATES or not m.group(2):
                continue
            if not _city_words(text, m.start(1), m.end(1)):
                continue
        if m.group(5) is not None and m.group(6) is None:  # "Framingham, Massachusetts."
            if m.group(5).lower() in _GIVEN_NAME_STATES or not m.group(2):
                continue
            if not _city_words(text, m.start(1), m.end(1)):
                continue
        start = m.start(1)
        for word in m.group(1).split()[:-1]:
            if word.lower() not in _CITY_LEAD:
                break
            start += len(word) + 1
        yield PhiSpan("CITY", start, m.end(1))
    for m in _ZIP_RE.finditer(text):
        if _ZIP_CONTEXT_RE.search(text, max(0, m.start() - 20), m.start()):
            yield PhiSpan("ZIP", m.start(), m.end())
    yield from _places(text)
    low = text.lower()
    if any(cue in low for cue in ("apt", "apartment", "suite", "ste", "unit")):
        for m in _UNIT_RE.finditer(text):
            yield PhiSpan("ADDRESS", m.start(), m.end())


# A place named after a label ("Town: Framingham", "County: Middlesex"), before "County"
# ("Suffolk County") or after a cue of residence ("lives in Cambridge", "moved from Brookline to
# Newton", "is from Worcester"): one to three capitalised words.
_PLACE_WORD = rf"{_UP}{_CITY_CH}*[A-Za-z{_MB}]"
_PLACE = rf"{_PLACE_WORD}(?:[ \t]{_PLACE_WORD}){{0,2}}"
_PLACE_LABEL_RE = re.compile(
    r"(?=[tcvbmhpTCVBMHP])\b(?i:town|city|county|village|borough|township|municipality|"
    r"hometown|birthplace|place[ \t]+of[ \t]+birth|city[ \t]+of[ \t]+(?:birth|residence)|"
    rf"city/town|parish)[ \t]*(?::|-[ \t])[ \t]*({_PLACE})"
)
_COUNTY_RE = re.compile(
    rf"(?={_UP})(?<![\w{_MB}])({_PLACE})[ \t]+(?:County|COUNTY|Parish|PARISH)\b"
)
# Found from the preposition (few are followed by a capital), then the verb before it is checked.
_RESIDENCE_RE = re.compile(
    r"(?:in|In|IN|near|Near|NEAR|from|From|FROM|to|To|TO)[ \t]+"
    rf"(?i:the[ \t]+)?(?={_UP})({_PLACE})"
    rf"(?:[ \t]+(?i:to|and|or)[ \t]+({_PLACE}))?"
)
_RESIDENCE_VERB_RE = re.compile(
    r"\b(?:(?:lives|live|living|lived|resides|reside|residing|resided|home|grew[ \t]+up|raised|"
    r"born|staying|stays|vacationing)[ \t]+(?:in|near)"
    r"|(?:moved|relocated|travell?ed|drove|flew|trip|vacationed)[ \t]+(?:here[ \t]+)?(?:from|to)"
    r"|(?:(?:he|she|they|who|patient|pt|family|i|we)[ \t]+(?:is|was|are|were)|comes|came|"
    r"originally|hails|immigrated|emigrated|returned|visiting)[ \t]+(?:here[ \t]+)?"
    r"(?:originally[ \t]+)?from)[ \t]+(?:the[ \t]+)?$",
    _I,
)
_MONTH_OR_DAY_RE = re.compile(rf"{_MONTH}\.?|(?:mon|tues|wednes|thurs|fri|satur|sun)day", _I)
_US_STATE_LOWER = frozenset(n.lower() for n in US_STATE_NAMES.split("|"))
# "Apt 5B", "Suite 200", "Unit #7": an apartment or suite on its own.
_UNIT_RE = re.compile(
    r"(?=[AaSsUu])\b(?:(?i:apt|apartment|suite|ste)\.?[ \t]*#?|(?i:unit)[ \t]*#)[ \t]*"
    r"(?:\d+[A-Za-z]?(?:-\d+)?|[A-Z]\d*)(?![\w-])"
)


def _place_words(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The part of ``text[start:end]`` that names a place: from its first word that is not an
    ordinary word, a month or a weekday, up to the next such word; None when it is a state or a
    country (not a subdivision smaller than a state)."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[start:end])]
    keep: list[tuple[int, int]] = []
    for a, b in words:
        word = text[start + a : start + b]
        low = word.lower().rstrip(".")
        ordinary = (
            (low in NOT_NAMES and low not in ("new", "old"))  # "New Haven", "Old Lyme"
            or low in _CITY_LEAD
            or low in _NOT_PLACES
            or low in CLINICAL_WORDS
            or _MONTH_OR_DAY_RE.fullmatch(word)
        )
        if ordinary or low in _CREDENTIAL_LOWER:
            if low in _FUNCTION_WORDS or (not keep and low in _CITY_LEAD):
                if keep:
                    break
                continue
            if word[0].isupper():
                return None  # "Assisted Living", "Step Down": a name, of no place
            break
        keep.append((start + a, start + b))
    if not keep:
        return None
    first, last = keep[0][0], keep[-1][1]
    name = text[first:last].lower()
    if name in _US_STATE_LOWER or name in COUNTRIES or name.upper() in US_STATES:
        return None
    return first, last


_CREDENTIAL_LOWER = frozenset({"md", "do", "rn", "np", "pa", "phd"})
_FUNCTION_WORDS = frozenset("in at from to near of the and or by with".split())
# Where a patient comes from or moves to that is no town ("came from Rehab", "moved to Telemetry").
_NOT_PLACES = frozenset(
    """rehab rehabilitation facility shelter jail prison school work church hospice snf ltac
    ltach nursing assisted skilled living medicare medicaid triage urgent outpatient inpatient
    telemetry tele step stepdown ward pod bay obs observation recovery surgery medicine
    emergency intensive cardiac neuro psych psychiatry oncology labor delivery l&d nicu picu
    sicu micu ccu cvicu ed er icu pacu or ir cath lab dialysis radiology pharmacy""".split()
)


def _city_words(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` (before a state, with no ZIP) reads as a city: no ordinary
    word, no digit, and no abbreviation in capitals ("MRI L-spine, MA.", "PA, MA") unless the
    text around is all in capitals."""
    caps_around = text[max(0, start - 80) : end + 80].isupper()
    for word in text[start:end].split():
        low = word.lower()
        if low in NOT_NAMES and low not in _CITY_LEAD or low in CLINICAL_WORDS:
            return False
        if any(c.isdigit() for c in word) or (word.isupper() and not caps_around):
            return False
    return True


_PLACE_LABEL_HINTS = ("town", "city", "county", "village", "borough", "municipality", "birth")


def _places(text: str) -> Iterator[PhiSpan]:
    low = text.lower()
    regexes = [_RESIDENCE_RE]
    if "county" in low or "parish" in low:
        regexes.append(_COUNTY_RE)
    if any(hint in low for hint in _PLACE_LABEL_HINTS) or "parish" in low:
        regexes.append(_PLACE_LABEL_RE)
    for regex in regexes:
        for m in regex.finditer(text):
            if regex is _RESIDENCE_RE:
                verb = _RESIDENCE_VERB_RE.search(text, max(0, m.start() - 40), m.start(1))
                if verb is None:
                    continue
            for group in (1, 2):
                if (m.lastindex or 0) < group or m.group(group) is None:
                    continue
                place = _place_words(text, m.start(group), m.end(group))
                if place is not None:
                    yield PhiSpan("CITY", *place)


# A year of birth: "born in 1931", "b. 1931", "year of birth: 1931", "DOB: 1931", also
# approximate or bounded ("born circa 1931", "c. 1931", "born before 1931") and with what
# follows it that would tell it too (group 2: "1931-03", "1931/32", "1931/2", "1931 or 1932",
# "1931–1932"), replaced with the year; never a measure ("born 1925 g", "1925-1930 mg").
_BIRTH_UNIT = r"(?![ \t]*(?:k?g|mg|mcg|µg|ml|l|lbs?|oz|cm|mm|%|weeks?|wks?|days?|hours?|hrs?)\b)"
_BIRTH_YEAR_RE = re.compile(
    r"(?=[bBdDyY])(?<![\w.])(?:born(?:[ \t]+(?:in|during|before|after|by))?"
    r"(?:[ \t]+the[ \t]+year)?|b\."
    r"|(?:year[ \t]+of[ \t]+birth|birth[ \t]*year|yob|dob|date[ \t]+of[ \t]+birth)[ \t]*[:#-]?)"
    r"(?:[ \t]*(?:circa\.?|ca\.?|c\.|c(?=\d)|abt\.?|about|around|approximately|approx\.?|~))?"
    r"[ \t]*((?:18|19|20)\d\d)"
    r"((?:[ \t]*(?:-|–|/)[ \t]*(?:(?:18|19|20)\d\d|\d{1,2})|[ \t]+(?:or|to)[ \t]+(?:18|19|20)\d\d)"
    rf"(?![\w]|[-/.]\d){_BIRTH_UNIT})?"
    rf"(?(2)|(?![\w]|[-/.]\d){_BIRTH_UNIT})",
    _I,
)
_FOUR_DIGIT_YEAR_RE = re.compile(r"(?:18|19|20)\d\d")


# A decade: "1920s", "1920's", "the '20s", "early 1930s", "mid-’20s" (the qualifier with it).
# Groups 1 the qualifier, 2 a four-digit decade, 3 a two-digit one ("'20s").
_DECADE_RE = re.compile(
    r"(?<![\w'’.])(?:(early|mid|late)(?:-|[ \t]+))?"
    r"(?:((?:18|19|20)\d0)|['’](\d0))['’]?s(?!\w)(?!['’]\w)",
    _I,
)
# The last year of the part of a decade (or of a century: "the early 1900s") a qualifier names.
_DECADE_PART_END = {None: 9, "early": 3, "mid": 6, "late": 9}
_CENTURY_PART_END = {None: 99, "early": 33, "mid": 66, "late": 99}
_BIRTH_CUE_RE = re.compile(r"\b(?:born|birth|dob|yob)\b|(?<![\w.])b\.", _I)
# An age decade finer than "90 or older": "in her late 90s", "in his 100s", "mid-nineties".
_AGE_DECADE_RE = re.compile(
    r"\b(?:in|into)[ \t]+(?:his|her|their|the[ \t]+patient['’]s|pt['’]?s)[ \t]+"
    r"((?:(?:early|mid|late)(?:-|[ \t]+))?1[01]0['’]?s"
    r"|(?:early|mid|late)(?:-|[ \t]+)(?:90['’]?s|nineties))(?!\w)(?!['’]\w)",
    _I,
)


def find_ages(text: str, reference_year: int | None = None) -> Iterator[PhiSpan]:
    """Ages over 89 (the number only) and years of birth that imply one (the year only): born
    more than 89 years before ``reference_year`` (``DeidOptions.reference_year``; this year
    when None, for a direct call only: the Deidentifier always passes its options' year).
    Also decades all of whose years are that old ("the 1920s", with its qualifier) and age
    decades finer than 90 or older ("late 90s")."""
    year = current_year() if reference_year is None else reference_year
    low = text.lower()
    if any(cue in low for cue in ("born", "b.", "birth", "yob", "dob")):
        for m in _BIRTH_YEAR_RE.finditer(text):
            end = m.end(2) if m.group(2) else m.end(1)
            years = _FOUR_DIGIT_YEAR_RE.findall(text, m.start(1), end)
            if any(year - int(y) > 89 for y in years):  # either year of "born 1940 or 1925"
                yield PhiSpan("AGE", m.start(1), end)
    if "0s" in low or "0's" in low or "0’s" in low:
        yield from _old_decades(text, year)
        for m in _AGE_DECADE_RE.finditer(text):
            yield PhiSpan("AGE", m.start(1), m.end(1))
    elif "nineties" in low:
        for m in _AGE_DECADE_RE.finditer(text):
            yield PhiSpan("AGE", m.start(1), m.end(1))
    for m in _AGE_RE.finditer(text):
        start, end = _groups(m)
        yield PhiSpan("AGE", start, end)
    for m in _AGE_WORDS_RE.finditer(text):
        yield PhiSpan("AGE", m.start(1), m.end(1))
    for m in _AGE_IS_RE.finditer(text):
        yield PhiSpan("AGE", m.start(1), m.end(1))


def _old_decades(text: str, year: int) -> Iterator[PhiSpan]:
    """Decades that end more than 89 years before ``year``. A four-digit one counts anywhere
    (conservative: "a 1920s-era device" too); "1900s" is read as the century, its common
    sense. A two-digit one ("the '20s") is of the 1900s after a cue of birth ("born in the
    '20s") or when the 2000s' would be to come; otherwise it may be a recent one and is kept."""
    for m in _DECADE_RE.finditer(text):
        qualifier = m.group(1).lower() if m.group(1) else None
        part = _DECADE_PART_END[qualifier]
        if m.group(2) is not None:
            first = int(m.group(2))
            if first % 100 == 0:
                part = _CENTURY_PART_END[qualifier]
        else:
            digits = int(m.group(3))
            cue = _BIRTH_CUE_RE.search(text[max(0, m.start() - 40) : m.start()].split("\n")[-1])
            if cue is None and 2000 + digits <= year:
                continue
            first = 1900 + digits
        if first + part <= year - 90:
            yield PhiSpan("AGE", m.start(), m.end())


_STOP_BEFORE = frozenset(
    "the a an this that our your their his her its outside local same another any other "
    "previous prior referring sending receiving at in to from by with and or for as is was "
    "were seen presented admitted transferred discharged followed evaluated treated follow up "
    "on into via per see called ct mri mr us xr pet nm ed er icu".split()
)
_DESCRIPTIVE = frozenset(
    "general community memorial regional main medical county state city university "
    "children's childrens veterans affairs family".split()
)
_WORD_BACK_RE = re.compile(rf"({_LET}[\w'’.&{_MB}-]*)([ \t]+)$")


def find_institutions(text: str) -> Iterator[PhiSpan]:
    """Named hospitals, clinics, centres, practices and universities."""
    for m in _INSTITUTION_RE.finditer(text):
        lower_head = m.group(0)[0].islower()
        start = m.start()
        distinctive = " of " in m.group(0).lower()
        for _ in range(5):
            wm = _WORD_BACK_RE.search(text, max(0, start - 40), start)
            if wm is None:
                break
            word = wm.group(1)
            lw = word.lower()
            if lw == "of":
                prev = _WORD_BACK_RE.search(text, max(0, wm.start() - 40), wm.start())
                if prev is None or not prev.group(1)[0].isupper():
                    break
                start = wm.start(1)
                continue
            if lw.rstrip(".") in _STOP_BEFORE:
                break
            if not lower_head and not word[0].isupper():
                break
            start = wm.start(1)
            if lw not in _DESCRIPTIVE:
                distinctive = True
        if distinctive or text[start : m.start()].count(" ") >= 2:
            yield PhiSpan("INSTITUTION", start, m.end())
    for m in _UNIVERSITY_RE.finditer(text):
        yield PhiSpan("INSTITUTION", m.start(), m.start() + len(m.group(0).rstrip()))
