"""The Healthsheet model (Rostamzadeh et al. 2022): 14 sections of human answers + statistics.

Every question is a field whose ``description`` is the question itself. ``None`` means
*unanswered* (the completeness check lists it); an empty list is an answer ("none").
Health-specific items are typed; everything else is a Markdown answer. Statistics are never
typed by hand: :mod:`meddata.datasheet.stats` computes them from the converted data.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from meddata.datasheet.stats_model import Statistics

SCHEMA_VERSION: Literal["1"] = "1"


def _q(question: str) -> Any:
    """A question: optional, unanswered (``None``) by default."""
    return Field(default=None, description=question)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Citation(_Strict):
    """A publication that describes the release."""

    text: str = Field(description="Full reference (authors, title, venue, year).")
    arxiv: str | None = _q("arXiv identifier, e.g. 2405.19538.")
    doi: str | None = _q("DOI.")
    url: str | None = _q("Link to the publication.")


class Creator(_Strict):
    """One creator with its kind, in YAML ``{name: VinBrain, type: organization}``. A plain name
    in ``creators`` is a person."""

    name: str = Field(description="Name of the person or organization.")
    type: Literal["person", "organization"] = Field(
        default="person", description="person, or organization (a group, institution, company)."
    )


class DeviceInfo(_Strict):
    """Acquisition devices used for one modality."""

    modality: str = Field(description="Modality, e.g. chest radiograph (CR/DX).")
    manufacturers: list[str] | None = _q("Device manufacturers.")
    models: list[str] | None = _q("Device models.")
    settings: str | None = _q("Acquisition settings or protocols (Markdown).")


class Site(_Strict):
    """A site (hospital, clinic) where data was collected."""

    name: str = Field(description="Site name.")
    country: str | None = _q("Country.")
    care_setting: str | None = _q("Care setting (inpatient, outpatient, emergency, ICU…).")


class Agreement(_Strict):
    """How much labellers agreed."""

    metric: str = Field(description="Agreement metric (Cohen's kappa, F1 against a reference…).")
    value: float | None = _q("Value of the metric.")
    details: str | None = _q("What was compared, on how many items (Markdown).")


class GeneralInformation(_Strict):
    """Section 1: general information."""

    title: str | None = _q("What is the dataset called?")
    summary: str | None = _q("Provide a short summary of the dataset.")
    creators: list[str | Creator] | None = _q(
        "Who created the dataset (people, groups, institutions)?"
    )
    contact: str | None = _q("Who is the point of contact for questions about the dataset?")
    homepage: str | None = _q("Where is the dataset described or hosted?")
    citations: list[Citation] | None = _q("Which publications should be cited?")
    keywords: list[str] | None = _q("Keywords describing the dataset.")


class Versioning(_Strict):
    """Section 2: dataset versioning."""

    version: str | None = _q("Which version of the source release is this?")
    release_date: str | None = _q("When was this version released?")
    changes: str | None = _q("What changed compared with the previous version?")
    older_versions: str | None = _q("Are older versions still available and supported?")
    derived_from: str | None = _q("Is the dataset derived from another dataset? Which one?")


class Motivation(_Strict):
    """Section 3: motivation."""

    purpose: str | None = _q("For what purpose was the dataset created?")
    intended_tasks: list[str] | None = _q("Which tasks was the dataset built for?")
    funding: str | None = _q("Who funded the creation of the dataset?")
    gap_addressed: str | None = _q("Which gap in existing data does it address?")


class Composition(_Strict):
    """Section 4: data composition."""

    instance_description: str | None = _q("What do the instances represent?")
    patient_count: int | None = _q("How many patients does the source release state?")
    instance_count: int | None = _q("How many instances (images, records…) does it state?")
    study_count: int | None = _q("How many studies or encounters does it state?")
    modalities: list[str] | None = _q("Which data modalities are included?")
    modalities_per_patient: str | None = _q("Which modalities, and how many records, per patient?")
    labels_description: str | None = _q("Is there a label or target for each instance? Which?")
    missing_information: str | None = _q("Is any information missing from instances? Why?")
    relationships: str | None = _q("Are relationships between instances explicit (longitudinal)?")
    recommended_splits: str | None = _q("Are there recommended data splits? How were they made?")
    noise_and_errors: str | None = _q("Are there known errors, noise or redundancies?")
    external_resources: str | None = _q("Does the dataset rely on external resources?")
    sensitive_categories: list[str] | None = _q(
        "Which sensitive categories does the data contain (health, race, insurance…)?"
    )
    confidential_data: str | None = _q("Does the dataset contain confidential data? Which?")


class Devices(_Strict):
    """Section 5: devices and contextual attributes in data collection."""

    devices: list[DeviceInfo] | None = _q("Which devices acquired each modality?")
    sites: list[Site] | None = _q("At which sites was the data collected?")
    acquisition_protocol: str | None = _q("Which acquisition protocols were used?")
    contextual_attributes: str | None = _q(
        "Which contextual attributes (care setting, time of day, department) are recorded?"
    )


class Challenges(_Strict):
    """Section 6: challenges in tests and confounding factors."""

    confounders: list[str] | None = _q("Which known confounders affect the data?")
    shortcuts: str | None = _q("Are there spurious cues (markers, devices, text) models may use?")
    distribution_shift: str | None = _q("How may deployment data differ from this data?")
    test_challenges: str | None = _q("What makes evaluating on this data difficult?")


class Demographics(_Strict):
    """Section 7: collection and use of demographic information."""

    subgroups: list[str] | None = _q("Which demographic attributes are recorded?")
    attribute_source: Literal["self_reported", "recorded", "inferred", "mixed"] | None = _q(
        "How were demographic attributes obtained?"
    )
    definitions: str | None = _q("How are the categories defined?")
    missing: str | None = _q("How much demographic information is missing, and why?")
    representativeness: str | None = _q("How representative is the population served?")


class Preprocessing(_Strict):
    """Section 8: pre-processing and de-identification."""

    deidentification_method: str | None = _q("How was the data de-identified?")
    deidentification_standard: str | None = _q(
        "Which standard does the de-identification meet (HIPAA Safe Harbor, expert review…)?"
    )
    date_shifting: bool | None = _q("Were dates shifted?")
    reidentification_safeguards: str | None = _q(
        "Which safeguards protect against re-identification (access control, DUA, audits)?"
    )
    preprocessing_steps: str | None = _q("Which pre-processing was applied (resizing, format)?")
    raw_data_available: str | None = _q("Is the raw data available as well?")
    software: str | None = _q("Which software did the pre-processing?")


class Labelling(_Strict):
    """Section 9: labelling and subjectivity of labelling."""

    label_type: Literal["gold", "proxy", "mixed"] | None = _q(
        "Are labels gold standard (expert diagnosis) or proxies (e.g. extracted from reports)?"
    )
    gold_labels: list[str] | None = _q("Which labels are gold standard?")
    proxy_labels: list[str] | None = _q("Which labels are proxies?")
    labelling_method: str | None = _q("How were labels produced?")
    labeller_count: int | None = _q("How many human labellers were involved?")
    labeller_expertise: str | None = _q("What expertise did the labellers have?")
    labeller_agreement: Agreement | None = _q(
        "How much did labellers (or labeller and tool) agree?"
    )
    uncertainty: str | None = _q("How is label uncertainty represented?")
    annotator_demographics: str | None = _q("What are the labellers' demographics?")
    subjectivity: str | None = _q("Which labels are subjective and how is that handled?")


Consent = Literal["obtained", "waived", "not_required", "mixed"]


class Collection(_Strict):
    """Section 10: collection process."""

    irb_approved: bool | None = _q("Was collection approved by an ethics board (IRB)?")
    irb_body: str | None = _q("Which ethics board approved it?")
    consent: Consent | None = _q("Was informed consent obtained from patients?")
    consent_details: str | None = _q("How was consent obtained or why was it waived?")
    consent_revocation: str | None = _q("Can patients revoke consent? How?")
    countries: list[str] | None = _q("In which countries was the data collected?")
    mechanism: str | None = _q("How was the data collected (routine care, trial, registry…)?")
    collection_types: list[str] | None = _q(
        "Which kinds of collection apply (retrospective clinical records, prospective…)?"
    )
    timeframe: str | None = _q("Over which timeframe was the data collected?")
    collectors: str | None = _q("Who collected the data?")


AccessType = Literal["open", "registered", "credentialed", "restricted"]


class Inclusion(_Strict):
    """Section 11: inclusion criteria and accessibility."""

    inclusion_criteria: list[str] | None = _q("Which criteria included patients or records?")
    exclusion_criteria: list[str] | None = _q("Which criteria excluded them?")
    languages: list[str] | None = _q("In which languages is the text?")
    access_type: AccessType | None = _q("How open is access?")
    access_procedure: str | None = _q("How does one obtain access?")
    accessibility: str | None = _q("Are there barriers to use (formats, size, cost)?")


class Uses(_Strict):
    """Section 12: uses."""

    intended_uses: list[str] | None = _q("For which uses is the dataset intended?")
    out_of_scope_uses: list[str] | None = _q("What must the dataset not be used for?")
    prior_uses: str | None = _q("Has it been used already? Where?")
    risks: str | None = _q("What risks to individuals or groups could its use create?")
    social_impact: str | None = _q("What is its expected social impact?")
    biases: str | None = _q("Which biases are known?")
    limitations: str | None = _q("Which limitations should users know about?")


class Distribution(_Strict):
    """Section 13: dataset distribution."""

    license: str | None = _q("Under which license or terms is it distributed?")
    license_url: str | None = _q("Link to the license or terms.")
    requires_dua: bool | None = _q("Must users sign a data use agreement?")
    data_use_agreement: str | None = _q("What does the data use agreement require?")
    channels: str | None = _q("How is the dataset distributed?")
    restrictions: str | None = _q("Are there fees, export controls or other restrictions?")


class Maintenance(_Strict):
    """Section 14: maintenance."""

    maintainer: str | None = _q("Who maintains the dataset?")
    contact: str | None = _q("How can the maintainer be contacted?")
    update_policy: str | None = _q("Will the dataset be updated? How and how often?")
    errata: str | None = _q("Is there an erratum or list of known issues?")
    retention: str | None = _q("Are there limits on how long the data may be retained?")
    contributions: str | None = _q("Can others contribute? How?")


SECTION_TITLES: dict[str, str] = {
    "general": "General information",
    "versioning": "Dataset versioning",
    "motivation": "Motivation",
    "composition": "Data composition",
    "devices": "Devices and contextual attributes in data collection",
    "challenges": "Challenges in tests and confounding factors",
    "demographics": "Collection and use of demographic information",
    "preprocessing": "Pre-processing and de-identification",
    "labelling": "Labelling and subjectivity of labelling",
    "collection": "Collection process",
    "inclusion": "Inclusion criteria and accessibility",
    "uses": "Uses",
    "distribution": "Dataset distribution",
    "maintenance": "Maintenance",
}


class Healthsheet(_Strict):
    """A dataset's Healthsheet: the 14 sections of answers and the computed statistics."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    dataset: str | None = _q("Registered dataset name this sheet describes.")
    general: GeneralInformation = Field(default_factory=GeneralInformation)
    versioning: Versioning = Field(default_factory=Versioning)
    motivation: Motivation = Field(default_factory=Motivation)
    composition: Composition = Field(default_factory=Composition)
    devices: Devices = Field(default_factory=Devices)
    challenges: Challenges = Field(default_factory=Challenges)
    demographics: Demographics = Field(default_factory=Demographics)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    labelling: Labelling = Field(default_factory=Labelling)
    collection: Collection = Field(default_factory=Collection)
    inclusion: Inclusion = Field(default_factory=Inclusion)
    uses: Uses = Field(default_factory=Uses)
    distribution: Distribution = Field(default_factory=Distribution)
    maintenance: Maintenance = Field(default_factory=Maintenance)
    statistics: Statistics | None = Field(
        default=None, description="Computed from the converted data; never typed by hand."
    )

    def sections(self) -> list[tuple[str, str, BaseModel]]:
        """``(key, title, section)`` for the 14 sections, in Healthsheet order."""
        return [(key, title, getattr(self, key)) for key, title in SECTION_TITLES.items()]


def healthsheet_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Healthsheet` (``schemas/healthsheet.schema.json``)."""
    schema = Healthsheet.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://meddata.dev/schemas/healthsheet-1.json",
        **schema,
    }
