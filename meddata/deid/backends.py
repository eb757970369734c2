"""Optional recognisers that add spans to the rule-based ones: Presidio's pattern and NER
recognisers, or a Hugging Face token-classification model from a LOCAL directory. Both are used
only when installed and given locally; nothing is ever downloaded."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from meddata.deid.spans import PhiSpan
from meddata.errors import UsageError

Recogniser = Callable[[str], Iterable[PhiSpan]]

# Labels of other tools mapped to meddata's PHI types (unknown labels map to "OTHER").
LABELS = {
    "PERSON": "NAME",
    "PER": "NAME",
    "NAME": "NAME",
    "PATIENT": "NAME",
    "DOCTOR": "NAME",
    "STAFF": "NAME",
    "DATE": "DATE",
    "DATE_TIME": "DATE",
    "TIME": "TIME",
    "PHONE_NUMBER": "PHONE",
    "PHONE": "PHONE",
    "FAX": "PHONE",
    "EMAIL_ADDRESS": "EMAIL",
    "EMAIL": "EMAIL",
    "URL": "URL",
    "IP_ADDRESS": "IP",
    "LOCATION": "ADDRESS",
    "LOC": "ADDRESS",
    "ADDRESS": "ADDRESS",
    "STREET": "ADDRESS",
    "CITY": "CITY",
    "ZIP": "ZIP",
    "AGE": "AGE",
    "HOSPITAL": "INSTITUTION",
    "ORGANIZATION": "INSTITUTION",
    "ORG": "INSTITUTION",
    "ID": "ID",
    "MEDICAL_RECORD": "ID",
    "US_SSN": "ID",
    "DEVICE": "DEVICE",
}


def presidio_recogniser(analyzer: Any | None = None, language: str = "en") -> Recogniser:
    """Spans from a ``presidio_analyzer.AnalyzerEngine`` (built by the caller, or a default one
    whose spaCy model must already be installed)."""
    try:
        import presidio_analyzer
    except ImportError:
        raise UsageError(
            "The Presidio backend needs presidio-analyzer, which is not installed.",
            "pip install presidio-analyzer (and a local spaCy model), or use the built-in rules.",
        ) from None
    engine = analyzer if analyzer is not None else presidio_analyzer.AnalyzerEngine()

    def recognise(text: str) -> list[PhiSpan]:
        results = engine.analyze(text=text, language=language)
        return [PhiSpan(LABELS.get(r.entity_type, "OTHER"), r.start, r.end) for r in results]

    return recognise


def huggingface_recogniser(model_dir: Path, min_score: float = 0.5) -> Recogniser:
    """Spans from a token-classification model stored in ``model_dir`` (never downloaded)."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UsageError(
            "The Hugging Face backend needs a local model directory with a config.json.",
            "Download the model yourself and pass its folder; meddata never fetches models.",
        )
    try:
        from transformers import pipeline
    except ImportError:
        raise UsageError(
            "The Hugging Face backend needs transformers, which is not installed.",
            "pip install transformers torch, or use the built-in rules.",
        ) from None
    tagger = pipeline(
        "token-classification",
        model=str(model_dir),
        tokenizer=str(model_dir),
        aggregation_strategy="simple",
        model_kwargs={"local_files_only": True},
    )

    def recognise(text: str) -> list[PhiSpan]:
        out = []
        for ent in tagger(text):
            if float(ent["score"]) >= min_score:
                label = str(ent["entity_group"]).upper()
                out.append(PhiSpan(LABELS.get(label, "OTHER"), int(ent["start"]), int(ent["end"])))
        return out

    return recognise
