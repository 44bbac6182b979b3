"""A card as JSON (schema in cards/schema/), Markdown for people, and a Hugging Face README
(YAML front matter with model-index results); and a Hugging Face README back into a card."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Literal

import yaml
from rest_framework.exceptions import ParseError

from cards import content as card_content
from cards.models import ModelCard
from core.edge import MAX_JSON_DEPTH, check_json
from core.errors import ValidationFailed
from registry.evaluation_views import area_under

JSON_FORMAT = 1
# A README to import, whole (a card's own export may hold thousands of per-slice results in
# its model-index; requests carry at most Django's 2.5 MB anyway), and its front matter once
# the model-index, which import skips (results come from the version), is cut out as text.
MAX_IMPORT = 2 * 1024 * 1024
MAX_FRONT_MATTER = 256 * 1024


class _FrontMatterLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: Hugging Face front matter never needs them, and
    nested aliases expand exponentially once the card is saved as JSON."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


GENERATED_HEADINGS = {"model details", "metrics", "evaluations"}


def metric_groups(card: ModelCard) -> list[dict[str, Any]]:
    """The version's metrics grouped by dataset and split (what the card reports)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for name, value, dataset, split in card.version.metrics.order_by(
        "dataset", "split", "name"
    ).values_list("name", "value", "dataset", "split"):
        groups[(dataset, split)].append({"name": name, "value": value})
    return [{"dataset": d, "split": s, "metrics": m} for (d, s), m in groups.items()]


def evaluations(card: ModelCard) -> list[dict[str, Any]]:
    """The version's structured evaluations (confusion matrices, curves, metrics by slice),
    as recorded: what the card's evaluation section reports."""
    return [
        {
            "name": name,
            "kind": kind,
            "dataset": dataset or None,
            "split": split or None,
            "data": data,
        }
        for name, kind, dataset, split, data in card.version.evaluations.order_by(
            "name", "dataset", "split"
        ).values_list("name", "kind", "dataset", "split", "data")
    ]


def _details(card: ModelCard) -> dict[str, Any]:
    version = card.version
    content = card_content.normalise(card.content)
    return {
        "name": card.registered_model.name,
        "version": version.version,
        "date": version.created_at.date().isoformat(),
        "flavor": version.flavor,
        **content["model_details"],
    }


def to_json(card: ModelCard) -> dict[str, Any]:
    content = card_content.normalise(card.content)
    return {
        "schema": card_content.SCHEMA,
        "format_version": JSON_FORMAT,
        "status": card.status,
        "revision": card.revision,
        "model_details": _details(card),
        "sections": content["sections"],
        "metadata": content["metadata"],
        "quantitative_analysis": {
            "performance_metrics": [
                {
                    "type": m["name"],
                    "value": m["value"],
                    "dataset": g["dataset"] or None,
                    "split": g["split"] or None,
                }
                for g in metric_groups(card)
                for m in g["metrics"]
            ],
            "evaluations": evaluations(card),
        },
    }


def _metrics_table(card: ModelCard) -> list[str]:
    lines = []
    for group in metric_groups(card):
        where = " / ".join(x for x in (group["dataset"], group["split"]) if x) or "unspecified"
        lines += [f"**{where}**", "", "| metric | value |", "|---|---|"]
        lines += [f"| {m['name']} | {m['value']:.6g} |" for m in group["metrics"]] + [""]
    return lines or ["No metrics recorded.", ""]


def _cell(value: Any) -> str:
    """A Markdown table cell: pipes escaped, on one line."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _evaluation_lines(item: dict[str, Any]) -> list[str]:
    data = item["data"]
    where = " / ".join(x for x in (item["dataset"], item["split"]) if x)
    title = f"**{_cell(item['name'])}**" + (f" ({_cell(where)})" if where else "")
    if item["kind"] == "confusion_matrix":
        labels = [_cell(x) for x in data["labels"]]
        lines = [
            f"{title}: confusion matrix, rows actual, columns predicted",
            "",
            f"| actual \\ predicted | {' | '.join(labels)} |",
            "|---" * (len(labels) + 1) + "|",
        ]
        lines += [
            f"| {label} | {' | '.join(str(c) for c in row)} |"
            for label, row in zip(labels, data["matrix"], strict=True)
        ]
        return [*lines, ""]
    if item["kind"] == "curve":
        kind = {"roc": "ROC curve", "pr": "precision-recall curve"}.get(data["curve"], "curve")
        area = (
            f"; area under the points {area_under(data['points']):.4g}"
            if data["curve"] in ("roc", "pr")
            else ""
        )
        return [f"{title}: {kind}, {len(data['points'])} points{area}", ""]
    lines = [
        f"{title}: {_cell(data['metric'])} by slice",
        "",
        f"| slice | {_cell(data['metric'])} | count |",
        "|---|---|---|",
    ]
    lines += [
        f"| {_cell(s['slice'])} | {s['value']:.6g} | {s.get('count', '')} |" for s in data["slices"]
    ]
    return [*lines, ""]


def _body(card: ModelCard, heading: str) -> list[str]:
    details = _details(card)
    content = card_content.normalise(card.content)
    lines = [
        f"{heading} {details['name']} (version {details['version']})",
        "",
        f"{heading}# Model details",
        "",
        f"- **Version:** {details['version']}",
        f"- **Date:** {details['date']}",
        f"- **Authors:** {', '.join(details['authors'])}",
        f"- **Model type:** {details['model_type']}",
        f"- **Architecture:** {details['architecture']}",
        "",
    ]
    for section in card_content.SECTIONS:
        lines += [f"{heading}# {section.title}", "", content["sections"][section.key].strip(), ""]
    lines += [f"{heading}# Metrics", "", *_metrics_table(card)]
    found = evaluations(card)
    if found:
        lines += [f"{heading}# Evaluations", ""]
        for item in found:
            lines += _evaluation_lines(item)
    return lines


def to_markdown(card: ModelCard) -> str:
    status = card.get_status_display().lower()
    return "\n".join([*_body(card, "#"), f"_Card revision {card.revision}, {status}._", ""])


def _model_index(card: ModelCard, task: str) -> list[dict[str, Any]]:
    """Results for the Hub's model-index, one per dataset and split: the version's metrics,
    then each metric by slice as one metric per slice (the slice in its name and its
    arguments). Confusion matrices and curves have no place in the format and stay in the
    card's evaluation section."""
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for group in metric_groups(card):
        results[(group["dataset"], group["split"])] = [
            {"type": m["name"], "value": m["value"], "name": m["name"]} for m in group["metrics"]
        ]
    for item in evaluations(card):
        if item["kind"] != "slices":
            continue
        metric = item["data"]["metric"]
        results.setdefault((item["dataset"] or "", item["split"] or ""), []).extend(
            {
                "type": metric,
                "value": s["value"],
                "name": f"{metric} ({s['slice']})",
                "args": {"slice": s["slice"]},
            }
            for s in item["data"]["slices"]
        )
    index = []
    for (dataset_name, split), metrics in results.items():
        dataset = {"name": dataset_name or "unspecified", "type": dataset_name or "unspecified"}
        if split:
            dataset["split"] = split
        index.append({"task": {"type": task}, "dataset": dataset, "metrics": metrics})
    return [{"name": card.registered_model.name, "results": index}] if index else []


def to_hf_readme(card: ModelCard) -> str:
    """A README.md for the Hugging Face Hub: YAML metadata, then the card in Markdown."""
    meta = card_content.normalise(card.content)["metadata"]
    front: dict[str, Any] = {}
    for ours, theirs in (
        ("license", "license"),
        ("languages", "language"),
        ("datasets", "datasets"),
        ("tags", "tags"),
        ("base_model", "base_model"),
        ("library_name", "library_name"),
        ("pipeline_tag", "pipeline_tag"),
    ):
        if meta[ours]:
            front[theirs] = meta[ours]
    index = _model_index(card, meta["pipeline_tag"] or "tabular-classification")
    if index:
        front["model-index"] = index
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True) if front else ""
    return f"---\n{header}---\n\n" + "\n".join(_body(card, "#")) + "\n"


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?", re.S)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_DETAIL = re.compile(r"^-\s+\*\*(.+?):\*\*\s*(.*)$")


def _without_model_index(text: str) -> str:
    """The README with its front matter's top-level ``model-index`` entry cut out as text,
    before any YAML is parsed: the entry and every line under it that is indented, blank or
    a list item (YAML lets a top-level key's list start at column 0)."""
    match = _FRONT.match(text)
    if not match:
        return text
    kept, skipping = [], False
    for line in match.group(1).split("\n"):
        if line.startswith("model-index:"):
            skipping = True
            continue
        if skipping and (not line.strip() or line[0] in " \t-" or line.startswith("#")):
            continue
        skipping = False
        kept.append(line)
    front = "\n".join(kept)
    return f"---\n{front}\n---\n" + text[match.end() :]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values if isinstance(v, str | int | float)]


def from_hf_readme(text: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Card changes from a Hugging Face README, and a report of what did not map."""
    if len(text) > MAX_IMPORT:
        raise ValidationFailed(
            f"The README is larger than {MAX_IMPORT // 1024 // 1024} MB.",
            field="readme",
            code="too_large",
        )
    text = _without_model_index(text)
    match = _FRONT.match(text)
    if match and len(match.group(1)) > MAX_FRONT_MATTER:
        raise ValidationFailed(
            f"The README's front matter is larger than {MAX_FRONT_MATTER // 1024} KB "
            "(its model-index aside).",
            field="readme",
            code="too_large",
        )
    report: dict[str, list[str]] = {
        "unmapped_metadata": [],
        "unmapped_sections": [],
        "skipped_generated": [],
    }
    changes: dict[str, dict[str, Any]] = {"model_details": {}, "sections": {}, "metadata": {}}
    match = _FRONT.match(text)
    if match:
        try:
            front = yaml.load(match.group(1), Loader=_FrontMatterLoader) or {}  # noqa: S506
            check_json(front)
        except yaml.YAMLError as exc:
            raise ValidationFailed(
                f"The YAML front matter does not parse: {exc}", field="readme"
            ) from None
        except (RecursionError, ParseError):
            raise ValidationFailed(
                f"The YAML front matter is nested deeper than {MAX_JSON_DEPTH} levels.",
                field="readme",
            ) from None
        if not isinstance(front, dict):
            raise ValidationFailed("The YAML front matter must be a mapping.", field="readme")
        text = text[match.end() :]
        mapping = {
            "license": "license",
            "language": "languages",
            "datasets": "datasets",
            "tags": "tags",
            "base_model": "base_model",
            "library_name": "library_name",
            "pipeline_tag": "pipeline_tag",
        }
        for key, value in front.items():
            ours = mapping.get(key)
            if ours is None:
                if key != "model-index":  # results come from the version's metrics
                    report["unmapped_metadata"].append(str(key))
                continue
            if ours in card_content.METADATA_LISTS:
                changes["metadata"][ours] = _as_list(value)
            else:
                changes["metadata"][ours] = ", ".join(_as_list(value))
    by_title: dict[str, str] = {}
    for section in card_content.SECTIONS:
        for name in (section.title.lower(), *section.aliases):
            by_title.setdefault(name, section.key)
    # The part being read: a section (with its key) or the model details.
    current: tuple[Literal["section"], str] | tuple[Literal["details"], None] | None = None
    buffer: list[str] = []
    title_seen, section_level = False, None

    def flush() -> None:
        if current is None:
            return
        body = "\n".join(buffer).strip()
        if current[0] == "section":
            key = current[1]
            existing = changes["sections"].get(key)
            changes["sections"][key] = f"{existing}\n\n{body}".strip() if existing else body
            return
        for line in buffer:
            found = _DETAIL.match(line.strip())
            if not found:
                continue
            label, value = found.group(1).lower(), found.group(2).strip()
            if label == "authors":
                changes["model_details"]["authors"] = [
                    a.strip() for a in value.split(",") if a.strip()
                ]
            elif label in ("model type", "architecture"):
                changes["model_details"][label.replace(" ", "_")] = value

    for line in text.splitlines():
        heading = _HEADING.match(line)
        level = len(heading.group(1)) if heading else 0
        if heading and level == 1 and not title_seen and section_level is None:
            title_seen = True  # the card's title
            continue
        if heading and (section_level is None or level <= section_level):
            # A section boundary; deeper headings stay inside the section's text.
            section_level = section_level or level
            flush()
            title = heading.group(2).strip().lower()
            buffer = []
            if title == "model details":
                current = ("details", None)
            elif title in by_title:
                current = ("section", by_title[title])
            else:
                current = None
                (
                    report["skipped_generated"]
                    if title in GENERATED_HEADINGS
                    else report["unmapped_sections"]
                ).append(heading.group(2).strip())
            continue
        buffer.append(line)
    flush()
    return {part: values for part, values in changes.items() if values}, report
