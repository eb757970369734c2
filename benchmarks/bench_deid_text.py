"""Clinical-text de-identification: meddata vs peers on the same generated corpus.

Measures recall/precision (entity and token level, see meddata.deid.evaluate) and throughput
(reports per second, one process pinned to one core) on a held-out corpus seed that was never
used while developing the recogniser.

Peers run in their own virtual environment (never in the project's):

    python3 -m venv benchmarks/.venv-deid
    benchmarks/.venv-deid/bin/pip install scrubadub==2.0.1 presidio-analyzer spacy \
        philter-ucsf==1.0.3 chardet dicognito==0.19.0 deid==0.4.13 dicom-anonymizer==2.1.0

Run (from the repository root, with the project venv):

    .venv/bin/python benchmarks/bench_deid_text.py [--docs 1000] [--seed 20261128]

philter-ucsf is attempted and reported as "could not run offline" when it fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_PYTHON = HERE / ".venv-deid" / "bin" / "python"
HELD_OUT_SEED = 20261128


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


# ---- peers (run inside the peer venv) -------------------------------------------------------
SCRUBADUB_TYPES = {
    "email": "EMAIL",
    "phone": "PHONE",
    "url": "URL",
    "name": "NAME",
    "address": "ADDRESS",
    "postalcode": "ZIP",
    "date_of_birth": "DATE",
    "social_security_number": "ID",
    "credential": "ID",
    "twitter": "OTHER",
}


def _scrubadub() -> tuple[object, object]:
    import scrubadub

    scrubber = scrubadub.Scrubber()

    def spans(text: str) -> list[tuple[str, int, int]]:
        return [
            (SCRUBADUB_TYPES.get(f.type, "OTHER"), f.beg, f.end) for f in scrubber.iter_filth(text)
        ]

    return scrubber, spans


def _presidio() -> tuple[object, object]:
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankSpacy(SpacyNlpEngine):  # type: ignore[misc]
        """Presidio's pattern recognisers with a blank spaCy pipeline (no model download)."""

        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    types = {
        "PERSON": "NAME",
        "DATE_TIME": "DATE",
        "PHONE_NUMBER": "PHONE",
        "EMAIL_ADDRESS": "EMAIL",
        "URL": "URL",
        "IP_ADDRESS": "IP",
        "LOCATION": "CITY",
        "US_SSN": "ID",
        "MEDICAL_LICENSE": "ID",
        "US_DRIVER_LICENSE": "ID",
        "US_BANK_NUMBER": "ID",
        "US_PASSPORT": "ID",
    }

    def spans(text: str) -> list[tuple[str, int, int]]:
        return [
            (types.get(r.entity_type, "OTHER"), r.start, r.end)
            for r in analyzer.analyze(text=text, language="en")
        ]

    return analyzer, spans


def _philter() -> tuple[object, object]:
    import nltk
    from philter_ucsf.philter import Philter  # noqa: F401 - import is part of the check

    nltk.pos_tag(["check"])  # needs the NLTK tagger data, which cannot be downloaded here
    raise RuntimeError("unreachable without NLTK data")


def peer_main(peer: str, corpus: Path, out: Path) -> None:
    """Run one peer over the corpus and write its spans and timing as JSON."""
    _pin_one_core()
    texts = json.loads(corpus.read_text())
    result: dict[str, object] = {"peer": peer}
    try:
        _, spans = {"scrubadub": _scrubadub, "presidio": _presidio, "philter": _philter}[peer]()
        spans(texts[0])  # warm-up
        started = time.perf_counter()
        found = [spans(t) for t in texts]  # type: ignore[operator]
        result["seconds"] = time.perf_counter() - started
        result["spans"] = found
    except Exception as exc:  # reported, never hidden
        result["error"] = (
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        )
    out.write_text(json.dumps(result))


# ---- meddata and the report (project venv) ---------------------------------------------------
def _philter_probe() -> str:
    """Why philter-ucsf cannot run here (it is tried for real, on one note)."""
    if not PEER_PYTHON.exists():
        return "peer venv missing"
    pkg = subprocess.run(
        [
            str(PEER_PYTHON),
            "-c",
            "import philter_ucsf, os; print(os.path.dirname(philter_ucsf.__file__))",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in"), Path(tmp, "out")
        src.mkdir()
        dst.mkdir()
        (src / "1.txt").write_text("Dr. John Smith saw the patient on 03/14/2021.\n")
        run = subprocess.run(
            [
                str(PEER_PYTHON),
                "-m",
                "philter_ucsf",
                "-i",
                f"{src}/",
                "-o",
                f"{dst}/",
                "-f",
                "./configs/philter_delta.json",
                "--prod=True",
            ],
            cwd=pkg or None,
            capture_output=True,
            text=True,
            timeout=300,
        )
        last = (run.stderr.strip().splitlines() or ["?"])[-1]
    nltk = subprocess.run(
        [str(PEER_PYTHON), "-c", "import nltk; nltk.pos_tag(['x'])"], capture_output=True, text=True
    )
    nltk_msg = (
        "NLTK tagger data present"
        if nltk.returncode == 0
        else (
            "NLTK 'averaged_perceptron_tagger_eng' data missing (LookupError; no download possible)"
        )
    )
    return f"exit {run.returncode}: {last[:120]}; {nltk_msg}"


def main() -> None:
    """Run every tool on the held-out corpus and print Markdown results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    ap.add_argument("--repeats", type=int, default=3, help="best-of timing runs for meddata")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from meddata.deid import Deidentifier
    from meddata.deid.corpus import generate_corpus
    from meddata.deid.evaluate import EvalReport, markdown_table, score_document
    from meddata.deid.spans import PhiSpan

    _pin_one_core()
    docs = generate_corpus(args.docs, args.seed)
    texts = [d.text for d in docs]
    deid = Deidentifier(b"benchmark-key-0123456789abcdef!!")
    best = float("inf")
    outputs = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        outputs = [deid.text(t, str(i % 97)) for i, t in enumerate(texts)]
        best = min(best, time.perf_counter() - started)
    rows: dict[str, tuple[EvalReport | None, str]] = {}
    report = EvalReport(documents=len(docs), seconds=best)
    for doc, out in zip(docs, outputs, strict=True):
        score_document(doc, out.spans, report)
    rows["meddata"] = (report, "")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp, "corpus.json")
        corpus.write_text(json.dumps(texts))
        for peer in ("scrubadub", "presidio", "philter"):
            result_path = Path(tmp, f"{peer}.json")
            subprocess.run(
                [str(PEER_PYTHON), __file__, "--peer", peer, str(corpus), str(result_path)],
                check=False,
                timeout=3600,
            )
            res = (
                json.loads(result_path.read_text())
                if result_path.exists()
                else {"error": "no output"}
            )
            if "error" in res:
                reason = _philter_probe() if peer == "philter" else str(res["error"])
                rows[peer] = (None, reason)
                continue
            rep = EvalReport(documents=len(docs), seconds=float(res["seconds"]))
            for doc, found in zip(docs, res["spans"], strict=True):
                score_document(doc, [PhiSpan(t, s, e) for t, s, e in found], rep)
            rows[peer] = (rep, "")
    print(f"Corpus: {args.docs} documents, held-out seed {args.seed}.\n")
    print(
        "| tool | reports/s (1 core) | entity recall | entity precision | token recall | token precision | note |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (rep, note) in rows.items():
        if rep is None:
            print(f"| {name} | – | – | – | – | – | could not run offline: {note} |")
            continue
        o = rep.overall.as_dict()
        print(
            f"| {name} | {rep.docs_per_second:,.0f} | {o['entity_recall']:.3f} | "
            f"{o['entity_precision']:.3f} | {o['token_recall']:.3f} | {o['token_precision']:.3f} | |"
        )
    print("\nmeddata per PHI type:\n")
    print(markdown_table(rows["meddata"][0]))  # type: ignore[arg-type]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        peer_main(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
