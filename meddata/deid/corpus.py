"""A seeded generator of synthetic radiology reports and clinical notes with PHI at known offsets.

The generator is written from what real reports look like, independently of the recogniser: its
own name, street, city and institution lists; many formats per PHI type; varied casing and
context; and non-PHI distractors that look like PHI (measurements, vertebral levels, grades,
ratios, blood pressures, "May" as a verb, surnames used as ordinary words). Every PHI value is
recorded as a gold span ``(type, start, end)``. Use one seed while developing and another,
held-out seed for the reported numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

PHI_TYPES = (
    "NAME",
    "DATE",
    "TIME",
    "ID",
    "PHONE",
    "EMAIL",
    "URL",
    "IP",
    "ADDRESS",
    "CITY",
    "ZIP",
    "AGE",
    "INSTITUTION",
    "DEVICE",
)

_FIRST = (
    "James Maria Robert Linda Michael Patricia David Jennifer William Elizabeth Richard Susan "
    "Joseph Jessica Thomas Sarah Christopher Karen Daniel Nancy Matthew Lisa Anthony Betty "
    "Donald Margaret Steven Sandra Paul Ashley Andrew Kimberly Joshua Emily Kenneth Donna Kevin "
    "Michelle Brian Dorothy George Carol Timothy Amanda Ronald Melissa Edward Deborah Jason "
    "Stephanie Jeffrey Rebecca Ryan Sharon Jacob Laura Gary Cynthia Nicholas Kathleen Eric Amy "
    "Jonathan Angela Stephen Shirley Larry Anna Justin Brenda Scott Pamela Brandon Emma Benjamin "
    "Nicole Samuel Helen Gregory Samantha Alexander Katherine Patrick Christine Jack Debra Dennis "
    "Rachel Jerry Carolyn Tyler Janet Aaron Catherine Jose Virginia Adam Heather Nathan Diane "
    "Henry Julie Zachary Joyce Douglas Victoria Peter Kelly Kyle Christina Noah Lauren Ethan Joan "
    "Jeremy Evelyn Walter Olivia Christian Judith Keith Megan Roger Cheryl Terry Andrea Austin "
    "Hannah Sean Martha Gerald Jacqueline Carl Frances Harold Gloria Dylan Ann Arthur Teresa "
    "Lawrence Kathryn Jordan Sara Jesse Janice Bryan Jean Billy Alice Bruce Madison Gabriel Doris "
    "Joe Abigail Logan Julia Alan Judy Juan Grace Albert Denise Willie Amber Elijah Marilyn Wayne "
    "Beverly Randy Danielle Vincent Theresa Mason Sophia Roy Marie Ralph Diana Bobby Brittany "
    "Russell Natalie Bradley Isabella Philip Charlotte Eugene Rose Mark Hope Faith Joy Dawn "
    "Summer April June Will Bill Grant Frank Ray Hunter Chase Sunny Destiny Precious Amit Priya "
    "Wei Mei Hiroshi Yuki Oluwaseun Chinedu Fatima Ahmed Mohammed Aisha Dmitri Svetlana Giovanni "
    "Francesca Siobhan Padraig Nguyen Thanh Jae-won Min-jun Rafael Ximena Guadalupe Thiago "
    "Bartholomew Ezekiel Imogen Cressida Lorcan Tadhg Ingrid Sigrid Anneliese Ludmila Kwame "
    "Abena Tenzin Pema Ravindra Lakshmi Shreya Arjun Zainab Yusuf Leilani Kai Ngozi Ife"
).split()

_LAST_WORDS = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips "
    "Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook "
    "Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward "
    "Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez "
    "Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan "
    "Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson "
    "Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole Hayes Bryant Herrera "
    "Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens Harrison "
    "Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker "
    "Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason "
    "Dixon Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox "
    "Warren Mills Meyer Rice Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan "
    "Gardner Payne Grant Dunn Kelley Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos "
    "Hart Bradley Knight Elliott Cunningham Duncan Armstrong Hudson Carroll Lane Riley Andrews "
    "Hope Mark Frank Little Love Golden Friend Bishop Dean Christian Rich Sharp Strong Wise "
    "Okonkwo Adeyemi Ramaswamy Venkataraman Kowalczyk Wisniewski Abernathy Fitzgerald "
    "O'Brien O'Connor McAllister Nakamura Takahashi Yamamoto Zhang Wang Liu Huang Achterberg "
    "Van_der_Berg De_Souza Al-Farsi Haddad Mansour Papadopoulos Ivanov Petrov Novak Horvath "
    "Lindqvist Johansson Nieminen Mbeki Mensah Osei Banerjee Chatterjee Iyer Ng Oyelaran "
    "Quigley Featherstone Whitlock Ashworth Penhaligon Thistlewood Blackwood"
).split()
_LAST = tuple(name.replace("_", " ") for name in _LAST_WORDS)

_STREETS = (
    "Oak Maple Cedar Pine Elm Washington Lake Hill Park Main Church Walnut Spring North "
    "Ridge Sunset Highland Willow Meadow Chestnut Franklin Lincoln Jefferson Cherry Birch "
    "Magnolia Hawthorne Sycamore Juniper Aspen Orchard Harbor Mill Bridge Prospect Valley"
).split()
_SUFFIXES = (
    "Street St. St Avenue Ave. Ave Road Rd. Boulevard Blvd. Drive Dr. Lane Ln Court Ct. Way "
    "Place Pl. Terrace Circle"
).split()
_CITIES = (
    "Springfield|Riverton|Fairview|Franklin|Greenville|Bristol|Clinton|Georgetown|Salem|Madison|"
    "Ashland|Burlington|Milton|Newport|Oxford|Dover|Hudson|Kingston|Lexington|Marion|Boston|"
    "Chicago|Houston|Phoenix|Philadelphia|San Antonio|San Diego|Dallas|Austin|Columbus|Charlotte|"
    "Indianapolis|Seattle|Denver|Nashville|Baltimore|Louisville|Milwaukee|Albuquerque|Tucson|"
    "Fresno|Sacramento|Mesa|Omaha|Raleigh|Cleveland|Tulsa|Minneapolis|Wichita|New Orleans|"
    "Ann Arbor|Palo Alto|Cedar Rapids|Sioux Falls|Grand Rapids|Fort Collins|Duluth|Bangor"
).split("|")
_STATES = "IL MA CA TX NY OH WA MI MN CO NC TN KY WI NM AZ NE OR IA SD ME".split()
_STATE_NAMES = "Illinois Massachusetts California Texas Ohio Michigan Oregon Iowa Maine".split()
_INSTITUTIONS = (
    "Mercy General Hospital|St. Mary's Medical Center|Riverside Imaging Center|"
    "Lakeside Community Hospital|Northwest Cardiology Associates|Good Samaritan Hospital|"
    "University of Springfield Medical Center|Valley View Clinic|Memorial Regional Hospital|"
    "Sacred Heart Hospital|St. Joseph's Hospital|Children's Hospital of Riverton|"
    "Fairview Family Practice|Bayside Orthopedic Institute|Hillcrest Rehabilitation Center|"
    "Greenville Veterans Affairs Medical Center|Oakwood Urgent Care|Pine Ridge Nursing Home|"
    "Kingston Radiology Group|Providence Health Clinic|Cedar Creek Dialysis Center|"
    "Saint Luke's Hospital|Harborview Medical Center|Westside Pediatrics"
).split("|")
_DEVICE_MAKERS = "Medtronic|Boston Scientific|Abbott|Biotronik|St. Jude|Philips|GE|Siemens".split(
    "|"
)
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

# Sentences with ordinary words that are also names, and numbers that look like PHI.
_DISTRACTORS = (
    "There is a 5 mm nodule in the right upper lobe.",
    "Mild degenerative disc disease at C5-C6 and C6-C7.",
    "Compression deformity of T4 without retropulsion.",
    "Grade 2 anterolisthesis of L4 on L5.",
    "This May represent atelectasis.",
    "Findings may represent early pneumonia; mark the site for follow-up.",
    "Brown adipose tissue uptake is noted in the supraclavicular regions.",
    "There is hope that the effusion will resolve with diuresis.",
    "Drainage catheter in good position.",
    "Dr. review of outside films was not available.",
    "Will follow up with repeat imaging in 3 months.",
    "Heart size is normal. Lungs are clear.",
    "BP 128/76, HR 72, RR 16, SpO2 97% on room air.",
    "Strength 5/5 in all extremities.",
    "A 2/6 systolic ejection murmur is heard.",
    "Pain score 3/10.",
    "Dilution 1:100; ratio 2:1.",
    "Lesion measures 1.2 x 3.4 x 2.0 cm (series 4, image 112).",
    "CTDIvol 12.4 mGy, DLP 456.7 mGy-cm.",
    "Hemoglobin 11.2 g/dL, WBC 8.4, platelets 245.",
    "Stable 4 mm left lower lobe nodule, Lung-RADS 2.",
    "No acute fracture. Bone mineral density T-score -2.1.",
    "Sodium 138, potassium 4.1, creatinine 0.9.",
    "Ejection fraction 55-60%.",
    "Follow-up CT in 6-12 months per Fleischner guidelines.",
    "ICD-10 J18.9; CPT 71046.",
    "Long segment stenosis of the superficial femoral artery.",
    "Patient is a poor historian; frank blood was noted in the stool.",
    "A young adult pattern of growth plates is seen.",
    "Rose bengal staining negative. Gray matter is normal in signal.",
    "The patient will grant consent after discussion.",
    "Summer allergies reported. Joy of eating is reduced.",
    "Dose 0.5 mg IV at 2 mL/min.",
    "3.0 T MRI with T1, T2 and FLAIR sequences.",
    "Version 4.2.1 of the reconstruction software was used.",
    "Bilateral 1.5 cm renal cysts, Bosniak 1.",
    "Aortic root 3.8 cm. No pericardial effusion.",
    "Taken 2 tabs PO q6h PRN, max 4 doses per day.",
    "Room 4, bed 2.",
    "Mark white matter hyperintensities, Fazekas grade 1.",
)


@dataclass(frozen=True)
class GoldSpan:
    """One PHI value in a generated document."""

    type: str
    start: int
    end: int


@dataclass(frozen=True)
class CorpusDoc:
    """A generated document and its gold PHI spans."""

    doc_id: str
    kind: str
    text: str
    spans: tuple[GoldSpan, ...]


@dataclass
class _Builder:
    parts: list[str] = field(default_factory=list)
    spans: list[GoldSpan] = field(default_factory=list)
    length: int = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def phi(self, kind: str, text: str) -> None:
        self.spans.append(GoldSpan(kind, self.length, self.length + len(text)))
        self.add(text)

    def mixed(self, pieces: list[tuple[str | None, str]]) -> None:
        for kind, text in pieces:
            if kind is None:
                self.add(text)
            else:
                self.phi(kind, text)

    def build(self, doc_id: str, kind: str, upper: bool) -> CorpusDoc:
        text = "".join(self.parts)
        if upper:
            text = text.upper()
        return CorpusDoc(doc_id, kind, text, tuple(self.spans))


@dataclass
class _Person:
    first: str
    middle: str
    last: str
    title: str


def _person(rng: random.Random, titles: tuple[str, ...]) -> _Person:
    return _Person(rng.choice(_FIRST), rng.choice(_FIRST), rng.choice(_LAST), rng.choice(titles))


def _name_pieces(rng: random.Random, p: _Person, clinician: bool) -> list[tuple[str | None, str]]:
    """A person's name in one of many formats, as (type, text) pieces."""
    n = "NAME"
    forms: list[list[tuple[str | None, str]]] = [
        [(n, f"{p.first} {p.last}")],
        [(n, f"{p.first} {p.middle[0]}. {p.last}")],
        [(n, f"{p.last}, {p.first}")],
        [(n, f"{p.last.upper()}, {p.first.upper()}")],
        [(n, f"{p.first[0]}. {p.last}")],
        [(n, f"{p.first.lower()} {p.last.lower()}")],
        [(n, f"{p.last.upper()}^{p.first.upper()}")],
    ]
    if clinician:
        forms += [
            [(None, "Dr. "), (n, p.last)],
            [(None, "Dr "), (n, f"{p.first} {p.last}")],
            [(None, "Dr. "), (n, f"{p.first[0]}. {p.last}")],
            [
                (n, f"{p.first} {p.last}"),
                (None, rng.choice([", MD", ", M.D.", " MD", ", DO", ", PA-C", ", RN", ", NP"])),
            ],
            [(n, f"{p.first} {p.middle[0]}. {p.last}"), (None, ", MD")],
            [(None, "Doctor "), (n, p.last)],
        ]
    else:
        forms += [
            [(None, p.title + " "), (n, p.last)],
            [(None, p.title + " "), (n, f"{p.first} {p.last}")],
        ]
    return rng.choice(forms)


def _date_text(rng: random.Random, d: date) -> str:
    m, day, y = d.month, d.day, d.year
    mon = _MONTHS[m - 1]
    forms = [
        f"{m:02d}/{day:02d}/{y}",
        f"{m}/{day}/{y}",
        f"{m}/{day}/{y % 100:02d}",
        f"{y}-{m:02d}-{day:02d}",
        f"{mon} {day}, {y}",
        f"{mon[:3]} {day}, {y}",
        f"{mon[:3]}. {day}, {y}",
        f"{day} {mon} {y}",
        f"{day:02d}-{mon[:3]}-{y}",
        f"{day}-{mon[:3].upper()}-{y}",
        f"{mon} {day}",
        f"{m}/{day}",
        f"{mon} {y}",
        f"{mon[:3]} {y}",
        f"{m:02d}/{y}",
        f"{day:02d}.{m:02d}.{y}",
        f"{y}{m:02d}{day:02d}",
        f"{_DAYS[d.weekday()]}, {mon} {day}, {y}",
        f"{mon} {day}{_ordinal(day)}, {y}",
        f"{day}{_ordinal(day)} of {mon}",
        f"{mon.lower()} {day}, {y}",
    ]
    return rng.choice(forms)


def _ordinal(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _date_pieces(rng: random.Random, d: date) -> list[tuple[str | None, str]]:
    r = rng.random()
    if r < 0.08:
        d2 = d + timedelta(days=rng.randint(1, 6))
        mon = _MONTHS[d.month - 1]
        if d2.month == d.month and rng.random() < 0.5:
            return [("DATE", f"{mon} {d.day}-{d2.day}, {d.year}")]
        sep = rng.choice([" - ", " to ", "-", " through "])
        return [
            ("DATE", f"{d.month}/{d.day}/{d.year}"),
            (None, sep),
            ("DATE", f"{d2.month}/{d2.day}/{d2.year}"),
        ]
    if r < 0.13:
        return [(None, "the "), ("DATE", f"{d.day}{_ordinal(d.day)}")]
    return [("DATE", _date_text(rng, d))]


def _time_text(rng: random.Random) -> str:
    h, mi = rng.randint(0, 23), rng.randint(0, 59)
    h12 = h % 12 or 12
    ap = "AM" if h < 12 else "PM"
    forms = [
        f"{h:02d}:{mi:02d}",
        f"{h}:{mi:02d}",
        f"{h12}:{mi:02d} {ap}",
        f"{h12}:{mi:02d} {ap.lower()}",
        f"{h12}:{mi:02d} {ap[0].lower()}.m.",
        f"{h:02d}{mi:02d} hours",
        f"{h:02d}:{mi:02d}:{rng.randint(0, 59):02d}",
        f"{h12}{ap.lower()}",
    ]
    return rng.choice(forms)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _letters(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(n))


def _id_pieces(rng: random.Random) -> list[tuple[str | None, str]]:
    forms: list[list[tuple[str | None, str]]] = [
        [(None, "MRN: "), ("ID", _digits(rng, rng.randint(6, 10)))],
        [(None, "MRN "), ("ID", _digits(rng, 8))],
        [(None, "MR# "), ("ID", _digits(rng, 7))],
        [(None, "Medical record number "), ("ID", _digits(rng, 7))],
        [(None, "Acc#: "), ("ID", f"{_letters(rng, 2)}{_digits(rng, 8)}")],
        [(None, "Accession: "), ("ID", _digits(rng, 9))],
        [
            (None, "Accession number "),
            ("ID", f"{_letters(rng, 3)}-{_digits(rng, 4)}-{_digits(rng, 6)}"),
        ],
        [(None, "Encounter # "), ("ID", f"E{_digits(rng, 9)}")],
        [(None, "SSN "), ("ID", f"{_digits(rng, 3)}-{_digits(rng, 2)}-{_digits(rng, 4)}")],
        [(None, "Account: "), ("ID", _digits(rng, 10))],
        [(None, "Patient ID: "), ("ID", f"{_letters(rng, 1)}{_digits(rng, 7)}")],
        [(None, "Order #"), ("ID", _digits(rng, 8))],
        [(None, "health plan no. "), ("ID", f"{_letters(rng, 3)}{_digits(rng, 9)}")],
        [(None, "Study ID "), ("ID", f"{_digits(rng, 4)}-{_digits(rng, 5)}")],
        [(None, "mrn "), ("ID", _digits(rng, 8))],
        [(None, "license no. "), ("ID", f"{_letters(rng, 1)}{_digits(rng, 6)}")],
    ]
    return rng.choice(forms)


def _phone_text(rng: random.Random) -> str:
    a, b, c = _digits(rng, 3), _digits(rng, 3), _digits(rng, 4)
    a = str(rng.randint(2, 9)) + a[1:]
    forms = [
        f"({a}) {b}-{c}",
        f"{a}-{b}-{c}",
        f"{a}.{b}.{c}",
        f"+1 {a} {b} {c}",
        f"1-{a}-{b}-{c}",
        f"{a}-{b}-{c} ext. {_digits(rng, 4)}",
        f"({a}){b}-{c}",
        f"{a} {b} {c}",
    ]
    return rng.choice(forms)


def _phone_pieces(rng: random.Random, who: str) -> list[tuple[str | None, str]]:
    lead = rng.choice(
        [
            "Phone: ",
            "Tel ",
            "Fax: ",
            "fax ",
            "Pager ",
            "call back number ",
            f"{who} can be reached at ",
            "cell ",
            "contact #: ",
        ]
    )
    return [(None, lead), ("PHONE", _phone_text(rng))]


def _email(rng: random.Random, p: _Person) -> str:
    user = rng.choice(
        [f"{p.first}.{p.last}", f"{p.first[0]}{p.last}", f"{p.last}{_digits(rng, 2)}"]
    ).lower()
    user = user.replace(" ", "").replace("'", "")
    dom = rng.choice(["mercyhealth.org", "gmail.com", "yahoo.com", "uspringfield.edu", "mail.net"])
    return f"{user}@{dom}"


def _url(rng: random.Random) -> str:
    host = rng.choice(
        [
            "portal.mercyhealth.org",
            "www.riversideimaging.com",
            "mychart.stmarys.org",
            "pacs.kingstonrad.net",
        ]
    )
    path = rng.choice(
        ["", "/patient/" + _digits(rng, 6), "/viewer?study=" + _digits(rng, 8), "/login"]
    )
    scheme = rng.choice(["https://", "http://", ""])
    if not scheme and not host.startswith("www."):
        scheme = "https://"
    return scheme + host + path


def _ip(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _address_pieces(rng: random.Random) -> list[tuple[str | None, str]]:
    num = str(rng.randint(1, 9999))
    street = f"{num} {rng.choice(['', 'N. ', 'S. ', 'W. ', 'East ', 'Old '])}{rng.choice(_STREETS)} {rng.choice(_SUFFIXES)}"
    if rng.random() < 0.3:
        street += rng.choice([", Apt 4B", ", Apt. 12", " #305", ", Unit 7", ", Suite 200"])
    if rng.random() < 0.08:
        street = f"PO Box {rng.randint(10, 9999)}"
    city = rng.choice(_CITIES)
    zip_code = _digits(rng, 5) if rng.random() < 0.8 else f"{_digits(rng, 5)}-{_digits(rng, 4)}"
    sep = rng.choice([", ", "\n", ",\n", "  "])
    state = rng.choice(_STATES) if rng.random() < 0.85 else rng.choice(_STATE_NAMES)
    return [
        ("ADDRESS", street),
        (None, sep),
        ("CITY", city),
        (None, ", " + state + " "),
        ("ZIP", zip_code),
    ]


def _age_pieces(rng: random.Random, age: int) -> list[tuple[str | None, str]]:
    kind = "AGE" if age > 89 else None
    forms: list[list[tuple[str | None, str]]] = [
        [(kind, str(age)), (None, "-year-old")],
        [(kind, str(age)), (None, " year old")],
        [(kind, str(age)), (None, " yo")],
        [(kind, str(age)), (None, " y/o")],
        [(kind, str(age)), (None, "yo")],
        [(None, "age "), (kind, str(age))],
        [(None, "aged "), (kind, str(age))],
        [(None, "Age: "), (kind, str(age))],
        [(kind, str(age)), (None, " years old")],
        [(kind, str(age)), (None, "M") if rng.random() < 0.5 else (None, "F")],
    ]
    return rng.choice(forms)


def _device_pieces(rng: random.Random) -> list[tuple[str | None, str]]:
    maker = rng.choice(_DEVICE_MAKERS)
    serial = rng.choice(
        [
            f"{_letters(rng, 3)}{_digits(rng, 6)}",
            f"{_letters(rng, 2)}-{_digits(rng, 7)}",
            _digits(rng, 9),
            f"{_digits(rng, 2)}{_letters(rng, 2)}{_digits(rng, 6)}",
        ]
    )
    lead = rng.choice(
        [
            f"{maker} pacemaker, serial number ",
            f"{maker} ICD (S/N: ",
            f"Device: {maker}, SN ",
            f"{maker} insulin pump serial no. ",
            "scanner serial # ",
            f"{maker} neurostimulator, device ID ",
        ]
    )
    tail = ")" if lead.endswith("(S/N: ") else ""
    return [(None, lead), ("DEVICE", serial), (None, tail)]


def _institution(rng: random.Random) -> str:
    inst = rng.choice(_INSTITUTIONS)
    return inst.lower() if rng.random() < 0.05 else inst


def _radiology(rng: random.Random, b: _Builder) -> None:
    pt = _person(rng, ("Mr.", "Ms.", "Mrs."))
    docs = [_person(rng, ("Dr.",)) for _ in range(3)]
    study = date(rng.randint(2005, 2024), rng.randint(1, 12), rng.randint(1, 28))
    prior = study - timedelta(days=rng.randint(20, 900))
    age = rng.choice([rng.randint(18, 89), rng.randint(90, 104)])
    sep = rng.choice([": ", ":  ", " - ", ":\t"])
    header: list[list[tuple[str | None, str]]] = [
        [
            (None, f"PATIENT{sep}" if rng.random() < 0.5 else f"Patient Name{sep}"),
            *_name_pieces(rng, pt, False),
        ],
        _id_pieces(rng),
        [
            (None, f"DOB{sep}"),
            *_date_pieces(
                rng, date(study.year - min(age, 100), rng.randint(1, 12), rng.randint(1, 28))
            ),
        ],
        [
            (None, f"Exam Date{sep}"),
            *_date_pieces(rng, study),
            (None, " "),
            ("TIME", _time_text(rng)),
        ],
        [(None, f"Referring Physician{sep}"), *_name_pieces(rng, docs[0], True)],
        [(None, f"Location{sep}"), ("INSTITUTION", _institution(rng))],
        _id_pieces(rng),
    ]
    rng.shuffle(header)
    for line in header[: rng.randint(3, len(header))]:
        b.mixed(line)
        b.add("\n")
    b.add("\n" + rng.choice(["EXAM: ", "EXAMINATION: ", "Study: "]))
    b.add(
        rng.choice(
            [
                "CT CHEST WITH CONTRAST",
                "MRI BRAIN WITHOUT CONTRAST",
                "XR CHEST 2 VIEWS",
                "US ABDOMEN COMPLETE",
                "CT ABDOMEN/PELVIS",
            ]
        )
    )
    b.add("\n\nCLINICAL HISTORY: ")
    b.mixed(_age_pieces(rng, age))
    b.add(rng.choice([" male with ", " female with ", " patient with ", " with "]))
    b.add(
        rng.choice(
            [
                "cough and fever.",
                "headache.",
                "abdominal pain.",
                "follow-up of nodule.",
                "shortness of breath.",
            ]
        )
    )
    b.add("\n\nCOMPARISON: ")
    if rng.random() < 0.8:
        b.add(
            rng.choice(
                [
                    "Prior study from ",
                    "CT chest dated ",
                    "Radiographs of ",
                    "Outside MRI performed ",
                ]
            )
        )
        b.mixed(_date_pieces(rng, prior))
        if rng.random() < 0.4:
            b.add(" at ")
            b.phi("INSTITUTION", _institution(rng))
        b.add(".")
    else:
        b.add("None.")
    b.add("\n\nFINDINGS:\n")
    for s in rng.sample(_DISTRACTORS, rng.randint(3, 6)):
        b.add(s + " ")
    if rng.random() < 0.5:
        b.add(
            rng.choice(["The nodule measures 6 mm on ", "Unchanged since ", "New compared with "])
        )
        b.mixed(_date_pieces(rng, prior))
        b.add(rng.choice([" 4.5 cm mass.", ", 3 mm.", "."]))
    b.add(
        "\n\nIMPRESSION:\n1. "
        + rng.choice(_DISTRACTORS)
        + "\n2. "
        + rng.choice(_DISTRACTORS)
        + "\n"
    )
    if rng.random() < 0.7:
        b.add(
            rng.choice(
                [
                    "\nFindings discussed with ",
                    "\nCritical result communicated to ",
                    "\nThese results were called to ",
                ]
            )
        )
        b.mixed(_name_pieces(rng, docs[1], True))
        b.add(rng.choice([" by telephone at ", " at "]))
        b.phi("TIME", _time_text(rng))
        b.add(" on ")
        b.mixed(_date_pieces(rng, study))
        if rng.random() < 0.4:
            b.add(", ")
            b.mixed(_phone_pieces(rng, "she"))
        b.add(".\n")
    b.add(
        "\n"
        + rng.choice(
            [
                "Dictated by: ",
                "Electronically signed by: ",
                "Read by ",
                "Attending radiologist: ",
                "Signed: ",
                "Reviewed by ",
            ]
        )
    )
    b.mixed(_name_pieces(rng, docs[2], True))
    if rng.random() < 0.6:
        b.add(" on ")
        b.mixed(_date_pieces(rng, study + timedelta(days=rng.randint(0, 2))))
        b.add(" ")
        b.phi("TIME", _time_text(rng))
    if rng.random() < 0.3:
        b.add("\n")
        b.phi("NAME", docs[2].first[0] + docs[2].last[0])
        b.add("/")
        b.phi("NAME", (pt.first[0] + pt.last[0]).lower())
    if rng.random() < 0.3:
        b.add("\n")
        b.phi("INSTITUTION", _institution(rng))
        b.add(", Department of Radiology\n")
        b.mixed(_address_pieces(rng))
        b.add("\n")
        b.mixed(_phone_pieces(rng, "the department"))
    b.add("\n")


def _note(rng: random.Random, b: _Builder) -> None:
    pt = _person(rng, ("Mr.", "Ms.", "Mrs.", "Miss"))
    rel = _person(rng, ("Mr.", "Ms."))
    doc = _person(rng, ("Dr.",))
    visit = date(rng.randint(2005, 2024), rng.randint(1, 12), rng.randint(1, 28))
    age = rng.choice([rng.randint(18, 89), rng.randint(90, 104)])
    b.add(rng.choice(["PROGRESS NOTE\n", "DISCHARGE SUMMARY\n", "Clinic note\n", "H&P\n", ""]))
    b.add(rng.choice(["Date of service: ", "Admission Date: ", "Visit: "]))
    b.mixed(_date_pieces(rng, visit))
    b.add("\n")
    b.mixed(_id_pieces(rng))
    b.add("\n\nHPI: ")
    b.mixed(
        [(None, pt.title + " "), ("NAME", pt.last)] if rng.random() < 0.6 else [("NAME", pt.first)]
    )
    b.add(" is a ")
    b.mixed(_age_pieces(rng, age))
    b.add(" " + rng.choice(["man", "woman", "patient"]) + " with ")
    b.add(rng.choice(["CHF", "COPD", "type 2 diabetes", "atrial fibrillation", "CKD stage 3"]))
    b.add(" who presents with worsening symptoms since ")
    b.mixed(_date_pieces(rng, visit - timedelta(days=rng.randint(1, 30))))
    b.add(". " + " ".join(rng.sample(_DISTRACTORS, rng.randint(2, 4))) + "\n")
    b.add("Seen previously at ")
    b.phi("INSTITUTION", _institution(rng))
    b.add(rng.choice([" in ", " on "]))
    b.mixed(_date_pieces(rng, visit - timedelta(days=rng.randint(60, 2000))))
    b.add(".\n\nSOCIAL HISTORY: Lives ")
    b.add(rng.choice(["alone at ", "with her husband at ", "with daughter at ", "at "]))
    b.mixed(_address_pieces(rng))
    b.add(". ")
    b.add(rng.choice(["Daughter ", "Son ", "Wife ", "Husband ", "Emergency contact: ", "HCP is "]))
    b.mixed([("NAME", rel.first.lower())] if rng.random() < 0.15 else _name_pieces(rng, rel, False))
    b.add(", ")
    b.mixed(_phone_pieces(rng, "who"))
    b.add(".\n")
    if rng.random() < 0.6:
        b.add(rng.choice(["Email: ", "Prefers contact by e-mail (", "Portal message sent to "]))
        b.phi("EMAIL", _email(rng, pt if rng.random() < 0.7 else rel))
        b.add(". ")
    if rng.random() < 0.5:
        b.add(rng.choice(["Records at ", "Images available at ", "See "]))
        b.phi("URL", _url(rng))
        b.add(" ")
    if rng.random() < 0.35:
        b.add(
            rng.choice(
                ["Telehealth session from IP ", "Remote access logged from ", "device IP address "]
            )
        )
        b.phi("IP", _ip(rng))
        b.add(". ")
    if rng.random() < 0.5:
        b.add("\nDevices: ")
        b.mixed(_device_pieces(rng))
        b.add(", implanted ")
        b.mixed(_date_pieces(rng, visit - timedelta(days=rng.randint(100, 3000))))
        b.add(".")
    b.add("\n\nPLAN: " + " ".join(rng.sample(_DISTRACTORS, 2)))
    b.add(rng.choice([" Follow up in clinic on ", " Return visit ", " Next appointment "]))
    b.mixed(_date_pieces(rng, visit + timedelta(days=rng.randint(7, 90))))
    b.add(" at ")
    b.phi("TIME", _time_text(rng))
    b.add(rng.choice([" with ", " to see "]))
    b.mixed(_name_pieces(rng, doc, True))
    b.add(".\n\n")
    b.add(rng.choice(["-- ", "Signed: ", "Electronically signed by ", "", "Author: "]))
    b.mixed(_name_pieces(rng, doc, True))
    if rng.random() < 0.5:
        b.add(", ")
        b.mixed(_date_pieces(rng, visit))
    b.add("\n")
    if rng.random() < 0.3:
        b.add("cc: ")
        b.mixed(_name_pieces(rng, _person(rng, ("Dr.",)), True))
        b.add(", ")
        b.phi("INSTITUTION", _institution(rng))
        b.add("\n")


def generate_corpus(n: int, seed: int) -> list[CorpusDoc]:
    """``n`` documents (about half radiology reports, half clinical notes) for ``seed``."""
    out = []
    for i in range(n):
        rng = random.Random(f"meddata-corpus:{seed}:{i}")
        b = _Builder()
        kind = "radiology" if rng.random() < 0.55 else "note"
        (_radiology if kind == "radiology" else _note)(rng, b)
        out.append(b.build(f"{seed}-{i}", kind, upper=rng.random() < 0.1))
    return out
