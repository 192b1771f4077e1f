"""A small model registry in object storage.

Layout under a registry root (``gs://bucket/models`` or a local folder)::

    <root>/<model name>/<version>/model.joblib      the whole fitted Pipeline (KServe's layout)
    <root>/<model name>/<version>/metadata.json     the model card: versions, feature schema, sha256
    <root>/<model name>/<version>/...               reference.json, baselines (train), and
                                                    evaluation.json (attached by evaluate)
    <root>/<model name>/champion.json               the version deploy made current

A version is ``<UTC time>-<first 8 hex digits of the model's sha256>``: versions sort by time, and
one is never overwritten (every object is created with an if-absent precondition).

Versions appear atomically. GCS has no rename, so the staging area is the version folder itself
without its completing object: publish_model uploads every other file first and the model card
(metadata.json) last, and a version exists only when its metadata.json does. Every reader here
(list_versions, download_version, the champion) ignores or refuses a folder without it; an
interrupted publish therefore leaves only an invisible, *incomplete* folder, which
``mlstages registry list --incomplete`` shows and ``mlstages registry clean`` removes. A complete
version without evaluation.json (evaluate failed or has not run yet) is *unevaluated*: listed, but
never made the champion.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlstages.components.common.errors import ParameterError

_MODEL_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_model_name(name: str) -> str:
    """Model names become path segments and KServe InferenceService names: DNS-1123 labels."""
    if not _MODEL_NAME.match(name):
        raise ParameterError(
            f"parameter model_name={name!r} must be lowercase letters, digits and '-', "
            "start and end with a letter or digit, at most 63 characters (a Kubernetes name)"
        )
    return name


def model_name_for(data_uri: str) -> str:
    """A model name from a data file's name when none is given: ``gs://b/Sales 2024.csv`` gives
    ``sales-2024``; a query or a nameless URI gives ``model``."""
    stem = re.split(r"[/\\]", data_uri.split("?", 1)[0].rstrip("/"))[-1]
    stem = stem.split(".", 1)[0] if "://" not in stem else ""
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:63].strip("-")
    return name if name and name[0].isalnum() and _MODEL_NAME.match(name) else "model"


def new_version(sha256: str, now: dt.datetime | None = None) -> str:
    moment = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return f"{moment:%Y%m%dT%H%M%SZ}-{sha256[:8]}"


def version_uri(registry_uri: str, model_name: str, version: str) -> str:
    return f"{registry_uri.rstrip('/')}/{check_model_name(model_name)}/{version}"


# The object whose presence makes a version exist: the model card, written last.
COMPLETION_FILE = "metadata.json"

# What list and clean call a version: published and evaluated, published only, or not published.
COMPLETE, UNEVALUATED, INCOMPLETE = "complete", "unevaluated", "incomplete"

_VERSION = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{8}$")


def publish_model(model_dir: str | Path, registry_uri: str, model_name: str) -> str:
    """Copy a model directory (model.joblib + metadata.json + ...) to a new version; return its URI.

    metadata.json is written last, after every other file has landed: until then the version does
    not exist for any reader, and a publish that fails or is killed midway publishes nothing.
    """
    from mlstages.components.common import storage
    from mlstages.components.common.artifacts import read_metadata

    if not registry_uri.strip():
        raise ParameterError("parameter model_registry is empty: give a gs:// prefix or a folder")
    metadata = read_metadata(model_dir)
    target = version_uri(registry_uri, model_name, new_version(metadata["sha256"]))
    storage.upload_dir(str(model_dir), target, if_absent=True, last=COMPLETION_FILE)
    return target


@dataclass(frozen=True)
class VersionState:
    """One folder under a model's prefix and what it holds."""

    version: str
    uri: str
    state: str  # COMPLETE, UNEVALUATED or INCOMPLETE
    files: tuple[str, ...]

    @property
    def created_at(self) -> dt.datetime | None:
        """When its publish started (the time in its name), or None for a folder not named as a
        version is."""
        match = _VERSION.match(self.version)
        if not match:
            return None
        return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def version_states(registry_uri: str, model_name: str) -> list[VersionState]:
    """Every folder under the model's prefix with its state, oldest first, from one listing."""
    from mlstages.components.common import storage
    from mlstages.components.common.reference import EVALUATION_FILE

    prefix = f"{registry_uri.rstrip('/')}/{check_model_name(model_name)}/"
    files: dict[str, list[str]] = {}
    for uri in storage.list_uris(prefix):
        rest = uri[len(prefix) :].replace("\\", "/")
        # Only version folders: the model's folder also holds its retraining windows and data.
        if "/" in rest and _VERSION.match(rest.split("/", 1)[0]):
            version, name = rest.split("/", 1)
            files.setdefault(version, []).append(name)
    states = []
    for version, names in sorted(files.items()):
        if COMPLETION_FILE not in names:
            state = INCOMPLETE
        else:
            state = COMPLETE if EVALUATION_FILE in names else UNEVALUATED
        states.append(VersionState(version, prefix + version, state, tuple(sorted(names))))
    return states


def list_versions(registry_uri: str, model_name: str) -> list[str]:
    """Published versions of a model (those with their metadata.json), oldest first."""
    return [v.version for v in version_states(registry_uri, model_name) if v.state != INCOMPLETE]


def is_published(version_uri: str) -> bool:
    """Whether ``version_uri`` is a version whose publish completed (it has its metadata.json)."""
    from mlstages.components.common import storage

    return storage.exists(f"{version_uri.rstrip('/')}/{COMPLETION_FILE}")


def _not_published(version_uri: str) -> str:
    return (
        f"{version_uri} is not a published version: it has no {COMPLETION_FILE}, so its publish was "
        "interrupted (or is still running); `mlstages registry list --incomplete` lists such folders"
    )


# --- the champion: the version currently served ----------------------------------------------
#
# <root>/<model name>/champion.json names the served version. Only a successful deploy moves it;
# the blessing gate reads it to find its baseline. The previous champion is kept in the pointer so
# a failed rollout can roll back to it.

CHAMPION_FILE = "champion.json"


def champion_uri(registry_uri: str, model_name: str) -> str:
    return f"{registry_uri.rstrip('/')}/{check_model_name(model_name)}/{CHAMPION_FILE}"


def read_champion(registry_uri: str, model_name: str) -> dict | None:
    """The champion pointer ({"version", "model_uri", "updated_at", "previous"}), or None when no
    model of that name has been deployed yet (the first run). A pointer to a version that is not
    published (no metadata.json) is a ParameterError."""
    pointer = read_pointer(registry_uri, model_name)
    if pointer is not None and not is_published(pointer["model_uri"]):
        # Refused rather than ignored: reading "no champion" would let the gate bless a candidate
        # without comparing it with the model actually served.
        raise ParameterError(
            f"{champion_uri(registry_uri, model_name)} names {pointer['model_uri']}, which is not a "
            f"published version (it has no {COMPLETION_FILE}: its files were removed or never "
            "finished): point the champion at a published version (registry.set_champion) or delete "
            "the pointer"
        )
    return pointer


def read_pointer(registry_uri: str, model_name: str) -> dict | None:
    """The champion pointer as stored, without checking the version it names (for listing and
    cleaning, which must work when that version is broken)."""
    import json

    from mlstages.components.common import storage

    uri = champion_uri(registry_uri, model_name)
    if not storage.exists(uri):
        return None
    try:
        pointer = json.loads(storage.read_bytes(uri))
    except ValueError as exc:
        raise ParameterError(f"{uri} is not valid JSON: fix or delete it ({exc})") from exc
    if not isinstance(pointer, dict) or "model_uri" not in pointer:
        raise ParameterError(f"{uri} is not a champion pointer: it has no model_uri")
    return pointer


def check_champion_candidate(model_uri: str) -> None:
    """Refuse (ParameterError) a ``model_uri`` that is not a published, evaluated version: only
    such a version may become the champion. deploy asks before it rolls anything out."""
    from mlstages.components.common import storage
    from mlstages.components.common.reference import EVALUATION_FILE

    base = model_uri.rstrip("/")
    if not storage.exists(f"{base}/model.joblib"):
        raise ParameterError(f"cannot make {model_uri} the champion: it has no model.joblib")
    if not is_published(base):
        raise ParameterError(f"cannot make {model_uri} the champion: {_not_published(base)}")
    if not storage.exists(f"{base}/{EVALUATION_FILE}"):
        raise ParameterError(
            f"cannot make {model_uri} the champion: it was never evaluated (it has no "
            f"{EVALUATION_FILE}); evaluate it (with model_uri set to it, as the training pipeline "
            "does) and pass the blessing gate first"
        )


def set_champion(registry_uri: str, model_name: str, model_uri: str) -> dict:
    """Make ``model_uri`` (a published, evaluated version) the champion; return the new pointer."""
    import json

    from mlstages.components.common import storage

    check_champion_candidate(model_uri)
    previous = read_champion(registry_uri, model_name)
    pointer = {
        "model_name": model_name,
        "version": model_uri.rstrip("/").rsplit("/", 1)[-1],
        "model_uri": model_uri.rstrip("/"),
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "previous": (
            {k: previous[k] for k in ("version", "model_uri", "updated_at") if k in previous}
            if previous
            else None
        ),
    }
    storage.write_bytes(champion_uri(registry_uri, model_name), json.dumps(pointer, indent=2).encode())
    return pointer


# --- what the stages read and write in a version ------------------------------------------------
#
# evaluate attaches its evaluation to the version train published; the blessing gate names the
# candidate's version and downloads the champion's. Each goes through one function here.


def attach_evaluation(version_uri: str, evaluation: bytes) -> str:
    """Write ``evaluation`` (evaluate's JSON document) into the version as evaluation.json; return
    its URI.

    A version is never overwritten: the file is created if absent; a retry of the same task finds
    its own identical file and goes on, another evaluation is a StorageError.
    """
    from mlstages.components.common.reference import EVALUATION_FILE

    return _attach(version_uri, EVALUATION_FILE, evaluation, "evaluation", lambda old: old == evaluation)


# --- the blessing: what the gate decided for a version -------------------------------------------
#
# validate_model records its decision in the version it judged, so that a later reader (batch
# inference) can tell a blessed version from one the gate refused, or one it never saw. Only the
# decision is recorded, not the gate's whole report: that holds latencies, which differ on a retry.

BLESSING_FILE = "blessing.json"


def blessing_record(blessed: bool, reason: str, sha256: str, baseline_version: str = "") -> dict:
    """The record written as blessing.json: the decision, its reason and the model's sha256 (so a
    record copied beside another model does not bless it)."""
    return {
        "blessed": bool(blessed),
        "reason": reason,
        "sha256": sha256,
        "baseline_version": baseline_version,
    }


def attach_blessing(version_uri: str, record: dict) -> str:
    """Write the gate's ``record`` (``blessing_record``) into the version as blessing.json; return
    its URI. Never overwritten: a retry that reaches the same decision goes on, another decision is
    a StorageError."""
    import json

    data = json.dumps(record, indent=2, sort_keys=True).encode()

    def same_decision(old: bytes) -> bool:
        try:
            return json.loads(old).get("blessed") is record.get("blessed")
        except (ValueError, AttributeError):
            return False

    return _attach(version_uri, BLESSING_FILE, data, "blessing", same_decision)


def read_blessing(model_dir: str | Path) -> dict | None:
    """The blessing.json in a model folder (a downloaded version), or None when there is none."""
    import json

    path = Path(model_dir) / BLESSING_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ParameterError(f"{path} is not valid JSON: fix or delete it ({exc})") from exc
    return record if isinstance(record, dict) else None


def was_champion(registry_uri: str, model_name: str, model_uri: str) -> bool:
    """Whether ``model_uri`` is the champion of ``model_name``, or the one before it (deploy moved
    the pointer from it): a deployed version passed the gate."""
    if not registry_uri.strip() or not model_uri.strip():
        return False
    pointer = read_champion(registry_uri, model_name)
    if pointer is None:
        return False
    uris = {pointer.get("model_uri"), (pointer.get("previous") or {}).get("model_uri")}
    return model_uri.rstrip("/") in {u.rstrip("/") for u in uris if isinstance(u, str)}


def _attach(version_uri: str, name: str, data: bytes, what: str, same: Callable[[bytes], bool]) -> str:
    from mlstages.components.common import storage
    from mlstages.components.common.errors import StorageError

    if not is_published(version_uri):
        article = "an" if what[0] in "aeiou" else "a"
        raise StorageError(f"cannot attach {article} {what}: {_not_published(version_uri.rstrip('/'))}")
    target = f"{version_uri.rstrip('/')}/{name}"
    if storage.exists(target):
        if same(storage.read_bytes(target)):
            return target
        raise StorageError(
            f"{target} already exists with another {what}: registry versions are never "
            "overwritten; pass the model_uri of the version this task judged"
        )
    storage.write_bytes(target, data, if_absent=True)
    return target


def read_evaluation(version_uri: str) -> dict | None:
    """The evaluation evaluate attached to a version (its JSON document), or None when there is none."""
    from mlstages.components.common.reference import EVALUATION_FILE, read_evaluation_file

    return read_evaluation_file(f"{version_uri.rstrip('/')}/{EVALUATION_FILE}")


def version_of(uri: str, registry_uri: str, model_name: str) -> str | None:
    """The version segment of ``uri`` when it is a version of ``model_name`` in the registry."""
    if not uri or not registry_uri:
        return None
    prefix = f"{registry_uri.rstrip('/')}/{model_name}/"
    rest = uri.rstrip("/")[len(prefix) :] if uri.startswith(prefix) else ""
    return rest if rest and "/" not in rest else None


def download_version(version_uri: str, directory: str | Path) -> None:
    """Download the files of a published version (model.joblib, metadata.json, ...) into
    ``directory``; a folder without its metadata.json is refused (StorageNotFound)."""
    from mlstages.components.common import storage
    from mlstages.components.common.errors import StorageNotFound

    if not is_published(version_uri):
        raise StorageNotFound(_not_published(version_uri.rstrip("/")))
    storage.download_dir(version_uri, directory)


def download_champion(registry_uri: str, model_name: str, directory: str | Path) -> dict:
    """Download the champion of ``model_name`` into ``directory``; return its pointer.

    Raises ParameterError naming the registry when it is empty or has no champion yet (monitoring
    compares new data with the deployed model's training data: train and deploy first).
    """
    if not registry_uri.strip():
        raise ParameterError("parameter model_registry is empty: give the registry (gs:// or a folder)")
    pointer = read_champion(registry_uri, model_name)
    if pointer is None:
        raise ParameterError(
            f"no champion for model_name={model_name!r}: {champion_uri(registry_uri, model_name)} does "
            "not exist. Monitoring and batch inference use the deployed model: run the training "
            "pipeline (and let it deploy) first"
        )
    download_version(pointer["model_uri"], directory)
    return pointer


# --- keeping the registry tidy ------------------------------------------------------------------
#
# What a failed run leaves: an incomplete folder (the publish was interrupted) or an unevaluated
# version (evaluate failed). Neither is ever read as a model; `mlstages registry clean` removes
# them. The age limit keeps it from removing a publish or an evaluation that is still running:
# both take minutes, and the age is the publish's start time (the version's name).

DEFAULT_CLEAN_AGE = dt.timedelta(hours=1)


def removable_versions(
    registry_uri: str,
    model_name: str,
    *,
    older_than: dt.timedelta = DEFAULT_CLEAN_AGE,
    unevaluated: bool = False,
    now: dt.datetime | None = None,
) -> list[VersionState]:
    """The incomplete versions (and with ``unevaluated`` the unevaluated ones) started more than
    ``older_than`` ago. Never a complete version, never the champion or the version it replaced,
    never a folder not named as a version is (its age is unknown)."""
    pointer = read_pointer(registry_uri, model_name)
    kept = set()
    for entry in (pointer, (pointer or {}).get("previous")):
        if entry:
            kept.add(str(entry.get("model_uri", "")).rstrip("/").rsplit("/", 1)[-1])
    states = {INCOMPLETE, UNEVALUATED} if unevaluated else {INCOMPLETE}
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - older_than
    return [
        v
        for v in version_states(registry_uri, model_name)
        if v.state in states and v.version not in kept and v.created_at is not None and v.created_at <= cutoff
    ]


def remove_version(version: VersionState) -> None:
    """Delete every object of a version that is not complete, metadata.json first (so that it
    stops being a version before any of its files goes)."""
    from mlstages.components.common import storage

    if version.state == COMPLETE:
        raise ParameterError(f"{version.uri} is a complete version: the registry does not remove those")
    names = sorted(version.files, key=lambda name: name != COMPLETION_FILE)
    for name in names:
        storage.delete(f"{version.uri}/{name}", missing_ok=True)
    if not storage.is_gcs_uri(version.uri):
        # A local registry keeps folders of their own; GCS has none to remove.
        folder = storage.to_local_path(version.uri)
        for directory in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
            directory.rmdir()
        if folder.is_dir():
            folder.rmdir()
