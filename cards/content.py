"""What a model card holds: its sections, metadata and limits, and how complete it is.

The stored content is a JSON object (schema ``modelgate.card/v1``, documented in
``cards/schema/model-card-v1.schema.json``)::

    {"model_details": {"authors": [...], "model_type": "...", "architecture": "..."},
     "sections": {"intended_use": "markdown", ...},
     "metadata": {"license": "...", "languages": [...], "datasets": [...], "tags": [...],
                  "base_model": "...", "library_name": "...", "pipeline_tag": "..."}}

Name, version, date and the performance metrics are not stored: they come from the version
itself, so a card can never disagree with the registry about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ValidationFailed
from registry.validation import has_control_chars

SCHEMA = "modelgate.card/v1"
MAX_SECTION = 20_000  # characters of markdown per section
MAX_SHORT = 200  # a metadata string
MAX_LIST = 50  # entries in a metadata list


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    help: str
    # Headings that mean this section in Hugging Face cards (lower case), for import.
    aliases: tuple[str, ...] = ()


SECTIONS = (
    Section(
        "intended_use",
        "Intended use",
        "What the model is for, and for whom.",
        ("uses", "intended uses", "intended uses & limitations", "direct use", "intended use"),
    ),
    Section(
        "out_of_scope",
        "Out-of-scope uses",
        "Uses it must not be put to.",
        ("out-of-scope use", "out-of-scope uses", "out of scope use", "misuse"),
    ),
    Section(
        "training_data",
        "Training data",
        "What it learned from: sources, dates, size, preprocessing.",
        ("training data", "training details"),
    ),
    Section(
        "evaluation_data",
        "Evaluation data",
        "What it was tested on, and why that set.",
        ("evaluation data", "testing data", "testing data, factors & metrics", "evaluation"),
    ),
    Section(
        "performance",
        "Performance",
        "Commentary on the metrics (they are filled in from the version).",
        ("results", "performance", "evaluation results"),
    ),
    Section(
        "limitations",
        "Limitations",
        "Where it is weak or fails.",
        ("limitations", "bias, risks, and limitations", "risks and limitations"),
    ),
    Section(
        "bias_fairness",
        "Biases and fairness",
        "Groups it may treat differently, and what was measured.",
        ("bias", "biases", "fairness", "bias and fairness"),
    ),
    Section(
        "ethical_considerations",
        "Ethical considerations",
        "Risks to people, data protection, consent.",
        ("ethical considerations", "ethics"),
    ),
    Section("recommendations", "Recommendations", "How to use it safely.", ("recommendations",)),
    Section(
        "caveats",
        "Caveats",
        "Anything else a reader must know.",
        ("caveats", "caveats and recommendations", "other caveats"),
    ),
)
SECTION_KEYS = tuple(s.key for s in SECTIONS)
TITLES = {s.key: s.title for s in SECTIONS}

DETAIL_FIELDS = ("authors", "model_type", "architecture")
METADATA_LISTS = ("languages", "datasets", "tags")
METADATA_STRINGS = ("license", "base_model", "library_name", "pipeline_tag")

# Which sections each risk tier requires before a card can be submitted (policies may
# override per tier or per model). CardsConfig.ready() hands them, with SECTION_KEYS, to
# governance's policies, which import no card.
REQUIRED_BY_TIER: dict[str, list[str]] = {
    "low": ["intended_use"],
    "medium": ["intended_use", "out_of_scope", "training_data", "limitations"],
    "high": [
        "intended_use",
        "out_of_scope",
        "training_data",
        "evaluation_data",
        "performance",
        "limitations",
        "bias_fairness",
    ],
    "critical": list(SECTION_KEYS),
}


def empty() -> dict[str, Any]:
    return {
        "model_details": {"authors": [], "model_type": "", "architecture": ""},
        "sections": {key: "" for key in SECTION_KEYS},
        "metadata": {**{k: [] for k in METADATA_LISTS}, **{k: "" for k in METADATA_STRINGS}},
    }


def _string(value: Any, field: str, limit: int, *, markdown: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationFailed("Must be text.", field=field)
    if len(value) > limit:
        raise ValidationFailed(f"At most {limit} characters (this is {len(value)}).", field=field)
    allowed = value.replace("\n", "").replace("\t", "").replace("\r", "") if markdown else value
    if has_control_chars(allowed):
        raise ValidationFailed("Control characters are not allowed.", field=field)
    return value.replace("\r\n", "\n") if markdown else value.strip()


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise ValidationFailed(f"Must be a list of at most {MAX_LIST} strings.", field=field)
    cleaned = [_string(v, field, MAX_SHORT) for v in value]
    return list(dict.fromkeys(v for v in cleaned if v))


def merge(current: dict[str, Any], changes: Any) -> dict[str, Any]:
    """`current` with `changes` applied (a partial object of the same shape), validated.
    Unknown keys are refused by name, so a typo never silently drops text."""
    if not isinstance(changes, dict):
        raise ValidationFailed("The card must be a JSON object.", code="invalid_payload")
    unknown = set(changes) - {"model_details", "sections", "metadata"}
    if unknown:
        raise ValidationFailed(
            f"Unknown card parts: {', '.join(sorted(unknown))}.",
            code="unknown_field",
            fields={k: ["Unknown field."] for k in unknown},
        )
    result = {part: dict(values) for part, values in current.items()}
    allowed = {
        "model_details": DETAIL_FIELDS,
        "sections": SECTION_KEYS,
        "metadata": METADATA_LISTS + METADATA_STRINGS,
    }
    for part, values in changes.items():
        if not isinstance(values, dict):
            raise ValidationFailed("Must be an object.", field=part)
        for key, value in values.items():
            field = f"{part}.{key}"
            if key not in allowed[part]:
                raise ValidationFailed("Unknown field.", field=field, code="unknown_field")
            if part == "sections":
                result[part][key] = _string(value, field, MAX_SECTION, markdown=True)
            elif key in ("authors", *METADATA_LISTS):
                result[part][key] = _strings(value, field)
            else:
                result[part][key] = _string(value, field, MAX_SHORT)
    return result


def normalise(content: dict[str, Any]) -> dict[str, Any]:
    """Stored content completed with every key (older or imported content may lack some)."""
    return merge(
        empty(), {part: content.get(part, {}) for part in ("model_details", "sections", "metadata")}
    )


@dataclass(frozen=True)
class Completeness:
    required: list[str]
    missing: list[str]
    filled: int
    total: int

    @property
    def percent(self) -> int:
        if not self.required:
            return 100
        return round(100 * (len(self.required) - len(self.missing)) / len(self.required))

    @property
    def complete(self) -> bool:
        return not self.missing


def completeness(content: dict[str, Any], required: list[str]) -> Completeness:
    sections = content.get("sections", {})
    filled = [k for k in SECTION_KEYS if sections.get(k, "").strip()]
    return Completeness(
        required=list(required),
        missing=[k for k in required if k not in filled],
        filled=len(filled),
        total=len(SECTION_KEYS),
    )
