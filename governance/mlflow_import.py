"""Import an MLflow model registry into Modelgate (manage.py import_mlflow).

Reads a running MLflow server over its REST API (never its database) and copies registered
models, versions, descriptions, tags, aliases, stages, run ids, run links and sources through
the registry services, so every change is audited with the importing superuser as its actor.

What the importer guarantees:
- One transaction per model: a model is imported completely or not at all; the failure of
  one model is reported and the others go on.
- Version numbers stay MLflow's, gaps included; the model's counter ends at or above the
  highest imported number, so Modelgate never gives such a number out again.
- Idempotent: a second run over an unchanged MLflow registry writes nothing (no version,
  audit event or history row) and reports every model "unchanged".
- Stages and aliases are placed with the low-level moves that skip the promotion gate (an
  administrator's migration), and their history rows are marked as imported from MLflow:
  they record where MLflow had a version, never an approval.
- It never removes anything: tags, aliases and versions gone from MLflow stay in Modelgate.
  A stage or alias that Modelgate placed (or removed) after the import is kept and reported,
  not overwritten: once imported, Modelgate governs it.
- A Modelgate model of the same name that holds versions not imported from MLflow is
  refused and reported (its numbers would collide with MLflow's).
- A dry run performs each model's import and rolls it back: the report is exactly what a
  real run would do, and nothing is left behind.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from core import audit
from core.actors import Actor, acting_user
from core.errors import DomainError, Forbidden
from governance import history, policies
from governance.models import StageHistory
from registry import services, validation
from registry.models import Alias, ModelVersion, RegisteredModel
from registry.services.aliases import alias_point
from registry.services.versions import stage_move

logger = logging.getLogger(__name__)

# Imported versions carry this idempotency key (plus their number): it is how a later run
# tells them from versions registered in Modelgate itself.
MARKER = "mlflow-import:"
MAX_PAGE_SIZE = 1000  # MLflow's limit for registered-model searches
MAX_VERSION_NUMBER = 2**31 - 2
DEFAULT_PAGE_SIZE = 100
TIMEOUT = 30.0

# MLflow's client leaves prompts (registered models tagged as prompts) out of every search.
NOT_A_PROMPT = "tags.`mlflow.prompt.is_prompt` != 'true'"

STAGES = {
    "none": ModelVersion.Stage.NONE,
    "staging": ModelVersion.Stage.STAGING,
    "production": ModelVersion.Stage.PRODUCTION,
    "archived": ModelVersion.Stage.ARCHIVED,
}
STATUSES = {
    "READY": ModelVersion.Status.READY,
    "PENDING_REGISTRATION": ModelVersion.Status.PENDING_REGISTRATION,
    "FAILED_REGISTRATION": ModelVersion.Status.FAILED_REGISTRATION,
}


class SourceError(Exception):
    """The MLflow server could not be read: unreachable, refusing, or not answering like
    MLflow."""


class _Refused(Exception):
    """This model cannot be imported as it stands in Modelgate."""


def marker(number: int) -> str:
    return f"{MARKER}{number}"


# --- Reading MLflow ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """As MLflow's client sends them: HTTP basic when a username is given, else a bearer
    token, else nothing."""

    token: str = field(default="", repr=False)  # never in a log line or a traceback
    username: str = ""
    password: str = field(default="", repr=False)

    def header(self) -> str | None:
        if self.username:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        if self.token:
            return f"Bearer {self.token}"
        return None


def check_uri(uri: str) -> str:
    """The server's base URI, without a trailing slash; credentials never ride in it (they
    would end up in the report and the audit log)."""
    parts = urllib.parse.urlsplit(uri.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"--from must be an http:// or https:// URI of an MLflow server: {uri!r}")
    if parts.username or parts.password:
        raise SourceError(
            "Give credentials with --username/--password or --token (or MLFLOW_TRACKING_*), "
            "not inside the URI."
        )
    if parts.query or parts.fragment:
        raise SourceError(
            f"--from takes the server's base URI, without ?query or #fragment: {uri!r}"
        )
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class MlflowSource:
    """MLflow's registry REST API (/api/2.0/mlflow/...), read page by page."""

    def __init__(
        self,
        uri: str,
        *,
        credentials: Credentials | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: float = TIMEOUT,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise SourceError(f"The page size must be 1–{MAX_PAGE_SIZE}.")
        self.uri = check_uri(uri)
        self.credentials = credentials or Credentials()
        self.page_size = page_size
        self.timeout = timeout

    def _get(self, endpoint: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        header = self.credentials.header()
        if header:
            # Not sent on to another host if the server redirects.
            request.add_unredirected_header("Authorization", header)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise SourceError(self._refusal(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SourceError(f"Cannot reach MLflow at {self.uri}: {reason}") from None
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SourceError(
                f"{self.uri} did not answer {endpoint} with a JSON object: is it an MLflow server?"
            )
        return data

    def _refusal(self, exc: urllib.error.HTTPError) -> str:
        try:
            body = json.loads(exc.read() or b"{}")
        except (ValueError, OSError):
            body = {}
        code = body.get("error_code", "") if isinstance(body, dict) else ""
        message = str(body.get("message", ""))[:300] if isinstance(body, dict) else ""
        detail = f"{exc.code} {code}".strip() + (f": {message}" if message else "")
        if exc.code in (401, 403):
            return f"MLflow at {self.uri} refused the credentials ({detail})."
        return f"MLflow at {self.uri} answered {detail}."

    def _pages(self, endpoint: str, key: str, params: list[tuple[str, str]]) -> Iterator[Any]:
        token = ""
        seen: set[str] = set()
        while True:
            page = self._get(
                endpoint,
                [*params, ("max_results", str(self.page_size))]
                + ([("page_token", token)] if token else []),
            )
            items = page.get(key, [])
            if not isinstance(items, list):
                raise SourceError(f"MLflow's {endpoint} answer has no list '{key}'.")
            yield from items
            token = str(page.get("next_page_token") or "")
            if not token:
                return
            if token in seen:
                raise SourceError(f"MLflow's {endpoint} returned the same page token twice.")
            seen.add(token)

    def registered_models(self) -> Iterator[Any]:
        """Every registered model that is not a prompt, in name order."""
        return self._pages(
            "registered-models/search",
            "registered_models",
            [("filter", NOT_A_PROMPT), ("order_by", "name ASC")],
        )

    def versions(self, name: str) -> list[Any]:
        """Every (not deleted) version of one registered model."""
        if "'" not in name:
            condition = f"name = '{name}'"
        elif '"' not in name:
            condition = f'name = "{name}"'
        else:
            raise SourceError("MLflow's search grammar cannot name a model with both quotes.")
        found = self._pages(
            "model-versions/search",
            "model_versions",
            [("filter", condition), ("order_by", "version_number ASC")],
        )
        # The filter is an equality, but only an exact match is this model's.
        return [v for v in found if isinstance(v, dict) and v.get("name") == name]


# --- What MLflow holds, checked -------------------------------------------------------------


@dataclass(frozen=True)
class MlflowVersion:
    number: int
    description: str
    source: str
    run_id: str
    run_link: str
    status: str  # Modelgate's value
    status_message: str
    stage: str  # Modelgate's value
    tags: dict[str, str]


@dataclass(frozen=True)
class MlflowModel:
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    versions: tuple[MlflowVersion, ...]


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if value is None:  # MLflow leaves empty strings out
        return ""
    if not isinstance(value, str):
        raise SourceError(f"MLflow sent a non-text '{key}': {value!r}.")
    return value


def _tags(item: dict[str, Any]) -> dict[str, str]:
    pairs = item.get("tags") or []
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise SourceError("MLflow sent tags that are not a list of key/value pairs.")
    return {_text(p, "key"): _text(p, "value") for p in pairs}


def _number(value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise SourceError(f"MLflow sent a version number that is not positive: {value!r}.")
    if number > MAX_VERSION_NUMBER:
        # The column holds 2**31 - 1 on PostgreSQL, and the next version needs a number too.
        raise SourceError(f"MLflow sent a version number Modelgate cannot hold: {value!r}.")
    return number


def parse_version(item: dict[str, Any]) -> MlflowVersion:
    stage = _text(item, "current_stage") or "None"
    status = _text(item, "status") or "PENDING_REGISTRATION"  # MLflow's own reading
    if stage.lower() not in STAGES:
        raise SourceError(f"MLflow sent an unknown stage {stage!r}.")
    if status not in STATUSES:
        raise SourceError(f"MLflow sent an unknown status {status!r}.")
    return MlflowVersion(
        number=_number(item.get("version")),
        description=_text(item, "description"),
        source=_text(item, "source"),
        run_id=_text(item, "run_id"),
        run_link=_text(item, "run_link"),
        status=STATUSES[status],
        status_message=_text(item, "status_message"),
        stage=STAGES[stage.lower()],
        tags=_tags(item),
    )


def parse_model(item: dict[str, Any], versions: list[Any]) -> MlflowModel:
    aliases = item.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, dict) for a in aliases):
        raise SourceError("MLflow sent aliases that are not a list of alias/version pairs.")
    parsed = sorted((parse_version(v) for v in versions), key=lambda v: v.number)
    return MlflowModel(
        name=_text(item, "name"),
        description=_text(item, "description"),
        tags=_tags(item),
        aliases={_text(a, "alias"): _number(a.get("version")) for a in aliases},
        versions=tuple(parsed),
    )


# --- Writing Modelgate -----------------------------------------------------------------------


@dataclass
class ModelOutcome:
    """What the import did to one model, for the report."""

    name: str
    result: str = "unchanged"  # created | updated | unchanged | refused | failed
    description: bool = False  # the model's description was changed
    versions_created: int = 0
    versions_updated: int = 0
    tags: int = 0
    aliases: int = 0
    stages: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result in ("created", "updated", "unchanged")

    @property
    def changed(self) -> bool:
        return self.result == "created" or any(self.counts().values())

    def counts(self) -> dict[str, int]:
        return {
            "description": int(self.description),
            "versions_created": self.versions_created,
            "versions_updated": self.versions_updated,
            "tags": self.tags,
            "aliases": self.aliases,
            "stages": self.stages,
        }

    def line(self) -> str:
        if not self.ok:
            return f"{self.name}: {self.result} — " + "; ".join(self.notes)
        if self.result == "unchanged":
            text = f"{self.name}: unchanged"
        else:
            text = (
                f"{self.name}: {self.result} — versions {self.versions_created} created, "
                f"{self.versions_updated} updated; tags {self.tags}; aliases {self.aliases}; "
                f"stages {self.stages}" + ("; description updated" if self.description else "")
            )
        return "".join([text, *(f"\n  - {note}" for note in self.notes)])


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    models: list[ModelOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[ModelOutcome]:
        return [m for m in self.models if not m.ok]

    def summary(self) -> str:
        counts = {
            r: sum(1 for m in self.models if m.result == r)
            for r in ("created", "updated", "unchanged", "refused", "failed")
        }
        text = ", ".join(f"{n} {r}" for r, n in counts.items())
        prefix = "Dry run, every change rolled back: " if self.dry_run else ""
        return f"{prefix}{len(self.models)} models: {text}."


def require_importer(user: User | None) -> User:
    """The import skips the promotion gate: only an active superuser may run it."""
    if user is None or not user.is_active or not user.is_superuser:
        raise Forbidden(
            "Importing from MLflow places stages and aliases without approval; only an "
            "active superuser may run it.",
            code="superuser_required",
        )
    return user


def import_registry(
    *,
    actor: Actor,
    source: MlflowSource,
    dry_run: bool = False,
    progress: Callable[[ModelOutcome], None] | None = None,
) -> ImportReport:
    """Import every registered model the MLflow server lists, each in its own transaction.
    A SourceError while listing models ends the run (the models imported so far stay);
    one model's failure is reported in its outcome and the run goes on."""
    require_importer(acting_user(actor))
    report = ImportReport(source=source.uri, dry_run=dry_run)
    for item in source.registered_models():
        name = item.get("name") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict) or not isinstance(name, str):
                raise SourceError(f"MLflow listed a registered model without a name: {item!r}")
            snapshot = parse_model(item, source.versions(name))
        except SourceError as exc:
            outcome = ModelOutcome(str(name), result="failed", notes=[str(exc)])
        else:
            outcome = import_model(
                actor=actor, snapshot=snapshot, source_label=source.uri, dry_run=dry_run
            )
        report.models.append(outcome)
        if progress is not None:
            progress(outcome)
    return report


def import_model(
    *, actor: Actor, snapshot: MlflowModel, source_label: str, dry_run: bool = False
) -> ModelOutcome:
    """Bring one model to what MLflow holds, in one transaction (rolled back in a dry run)."""
    outcome = ModelOutcome(snapshot.name)
    try:
        with transaction.atomic():
            _Import(actor, snapshot, outcome).run(source_label)
            if dry_run:
                transaction.set_rollback(True)
    except _Refused as exc:
        return ModelOutcome(snapshot.name, result="refused", notes=[str(exc)])
    except DomainError as exc:
        return ModelOutcome(snapshot.name, result="failed", notes=[exc.message])
    except Exception as exc:  # one model's surprise must not stop the others
        logger.exception("Importing MLflow model %r failed", snapshot.name)
        return ModelOutcome(snapshot.name, result="failed", notes=[f"{type(exc).__name__}: {exc}"])
    return outcome


class _Import:
    """One model's import, inside its transaction."""

    def __init__(self, actor: Actor, snapshot: MlflowModel, outcome: ModelOutcome) -> None:
        self.actor = actor
        self.snapshot = snapshot
        self.outcome = outcome
        self.versions: dict[int, ModelVersion] = {}
        self.history: list[dict[str, Any]] = []
        self.first_import = False

    def run(self, source_label: str) -> None:
        snapshot = self.snapshot
        # The row lock serialises this import with every other change of the model, and is
        # what stage_move and alias_point expect their caller to hold.
        existing = RegisteredModel.objects.select_for_update().filter(name=snapshot.name).first()
        self.first_import = existing is None
        if existing is None:
            registered_model = services.registered_model_create(
                actor=self.actor,
                name=snapshot.name,
                description=snapshot.description,
                tags=snapshot.tags,
            )
            self.outcome.result = "created"
            self.outcome.tags += len(snapshot.tags)
        else:
            registered_model = existing
            self._refuse_conflicts(registered_model)
            self._model_metadata(registered_model)
        last = registered_model.last_version_number
        for version in snapshot.versions:
            last = self._version(registered_model, version, last)
        self.history = [
            dict(row)
            for row in StageHistory.objects.filter(registered_model=registered_model)
            .order_by("started_at", "pk")
            .values("version_id", "kind", "name", "ended_at", "origin")
        ]
        for version in snapshot.versions:
            self._stage(version)
        for name, number in sorted(snapshot.aliases.items()):
            self._alias(registered_model, name, number)
        if existing is not None and self.outcome.changed:
            self.outcome.result = "updated"
        if self.outcome.changed:
            audit.record(
                actor=self.actor,
                action="mlflow.imported",
                target=registered_model,
                registered_model=registered_model,
                details={
                    "source": source_label,
                    "result": self.outcome.result,
                    **self.outcome.counts(),
                },
            )

    def _refuse_conflicts(self, registered_model: RegisteredModel) -> None:
        name = registered_model.name
        if registered_model.is_deleted:
            raise _Refused(
                f"A deleted Modelgate model holds the name '{name}'; restore or purge it first."
            )
        here = {v.version: v for v in registered_model.versions.all()}
        foreign = sorted(n for n, v in here.items() if v.idempotency_key != marker(n))
        if foreign:
            numbers = ", ".join(f"v{n}" for n in foreign[:10])
            raise _Refused(
                f"Modelgate's model '{name}' has versions that were not imported from MLflow "
                f"({numbers}); their numbers would collide with MLflow's. Rename that model in "
                "Modelgate (or in MLflow) and run the import again."
            )
        for version in self.snapshot.versions:
            mine = here.get(version.number)
            if mine is not None and (mine.source, mine.run_id) != (version.source, version.run_id):
                raise _Refused(
                    f"Version {version.number} of '{name}' was imported from another MLflow "
                    "version (its source or run id differs): was the model deleted and created "
                    "again in MLflow? Rename one of them and run the import again."
                )
        self.versions = here

    def _model_metadata(self, registered_model: RegisteredModel) -> None:
        snapshot = self.snapshot
        if registered_model.description != snapshot.description:
            services.registered_model_update(
                actor=self.actor,
                registered_model=registered_model,
                description=snapshot.description,
            )
            self.outcome.description = True
        current = dict(registered_model.tags.values_list("key", "value"))
        for key, value in snapshot.tags.items():
            if current.get(key) != value:
                services.registered_model_tag_set(
                    actor=self.actor, registered_model=registered_model, key=key, value=value
                )
                self.outcome.tags += 1

    def _version(self, registered_model: RegisteredModel, version: MlflowVersion, last: int) -> int:
        """Create or update one version; returns the model's version counter after it."""
        mine = self.versions.get(version.number)
        if not 1 <= version.number <= MAX_VERSION_NUMBER:
            raise SourceError(f"Version number {version.number} is out of Modelgate's range.")
        if mine is None:
            if version.number <= last:
                self.outcome.notes.append(
                    f"version {version.number} skipped: Modelgate gave that number out already "
                    "(the version was purged there) and never reuses it"
                )
                return last
            # Numbers are allocated under the model's row lock (which this transaction holds):
            # set the counter just below MLflow's number, and version_create takes that one.
            RegisteredModel.objects.filter(pk=registered_model.pk).update(
                last_version_number=version.number - 1
            )
            created, _ = services.version_create(
                actor=self.actor,
                registered_model=registered_model,
                description=version.description,
                source=version.source,
                run_id=version.run_id,
                run_link=version.run_link,
                tags=version.tags,
                status=ModelVersion.Status.READY
                if version.status == ModelVersion.Status.READY
                else ModelVersion.Status.PENDING_REGISTRATION,
                idempotency_key=marker(version.number),
            )
            if created.version != version.number:  # pragma: no cover - the lock guarantees it
                raise RuntimeError(f"version {version.number} was numbered {created.version}")
            if created.status != version.status or version.status_message:
                services.version_update(
                    actor=self.actor,
                    version=created,
                    status=version.status,
                    status_message=version.status_message,
                )
            self.versions[version.number] = created
            self.outcome.versions_created += 1
            self.outcome.tags += len(version.tags)
            return version.number
        if mine.is_deleted:
            self.outcome.notes.append(
                f"version {version.number} was deleted in Modelgate; left as it is"
            )
            return last
        changes = {
            f: getattr(version, f)
            for f in ("description", "run_link", "status", "status_message")
            if getattr(mine, f) != getattr(version, f)
        }
        if changes:
            mine = services.version_update(actor=self.actor, version=mine, **changes)
            self.versions[version.number] = mine
            self.outcome.versions_updated += 1
        current = dict(mine.tags.values_list("key", "value"))
        for key, value in version.tags.items():
            if current.get(key) != value:
                services.version_tag_set(actor=self.actor, version=mine, key=key, value=value)
                self.outcome.tags += 1
        return last

    def _governed(self, serving: bool) -> bool:
        """Whether a placement into a serving stage or a protected alias must go through
        Modelgate's approvals: always, once the model exists here. The first import records
        MLflow's registry as it was found (marked imported, never as approved); after that,
        whoever can write to the MLflow server must not decide what Modelgate serves."""
        return serving and not self.first_import

    def _placed_by_import(self, kind: str, match: Callable[[dict[str, Any]], bool]) -> bool:
        """Whether the import may move this stage or alias: nothing ever placed it, or its
        current placement is the import's own. Otherwise Modelgate placed or removed it since,
        and Modelgate's word stands."""
        rows = [r for r in self.history if r["kind"] == kind and match(r)]
        if not rows:
            return True
        current = [r for r in rows if r["ended_at"] is None]
        return bool(current) and current[-1]["origin"] == StageHistory.Origin.MLFLOW_IMPORT

    def _stage(self, version: MlflowVersion) -> None:
        mine = self.versions.get(version.number)
        if mine is None or mine.is_deleted or mine.stage == version.stage:
            return
        if not self._placed_by_import(
            StageHistory.Kind.STAGE, lambda r: r["version_id"] == mine.pk
        ):
            self.outcome.notes.append(
                f"version {version.number}: kept Modelgate's stage {mine.stage} (MLflow: "
                f"{version.stage}), set in Modelgate after the import"
            )
            return
        if self._governed(version.stage in ModelVersion.PROMOTION_STAGES):
            self.outcome.notes.append(
                f"version {version.number}: not moved to {version.stage} (MLflow has it there): "
                "the model is governed here since its first import; open a promotion request"
            )
            return
        moved = stage_move(
            actor=self.actor, version=mine, stage=version.stage, archive_existing=False
        )
        self.versions[version.number] = moved
        if version.stage != ModelVersion.Stage.NONE:
            history.placement_imported(
                registered_model=moved.registered_model,
                kind=StageHistory.Kind.STAGE,
                name=version.stage,
                version=moved,
            )
        self.outcome.stages += 1

    def _alias(self, registered_model: RegisteredModel, name: str, number: int) -> None:
        name = validation.alias_name(name)
        version = self.versions.get(number)
        if version is None or version.is_deleted:
            self.outcome.notes.append(
                f"alias {name} not imported: its version {number} is not in Modelgate"
            )
            return
        alias = (
            Alias.objects.select_related("version")
            .filter(registered_model=registered_model, name__iexact=name)
            .first()
        )
        if alias is not None and alias.version_id == version.pk:
            return
        if not self._placed_by_import(
            StageHistory.Kind.ALIAS, lambda r: str(r["name"]).lower() == name.lower()
        ):
            now = f"on v{alias.version.version}" if alias is not None else "removed"
            self.outcome.notes.append(
                f"alias {name}: kept as Modelgate has it ({now}; MLflow: v{number}), "
                "changed in Modelgate after the import"
            )
            return
        if self._governed(policies.is_protected(policies.policy_for(registered_model), name)):
            self.outcome.notes.append(
                f"alias {name}: not pointed at v{number} (MLflow has it there): it is protected "
                "and the model is governed here since its first import; open a promotion request"
            )
            return
        placed = alias_point(
            actor=self.actor, registered_model=registered_model, name=name, version=version
        )
        history.placement_imported(
            registered_model=registered_model,
            kind=StageHistory.Kind.ALIAS,
            name=placed.name,
            version=version,
        )
        self.outcome.aliases += 1
