"""What deploy did (DeployResult), its summary, and the example InferenceService in manifests/."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass
from mlstages.components.deploy.config import DEPLOYMENT_MODE_ANNOTATION, NO_CLUSTER_NOTE, DeployConfig
from mlstages.components.deploy.manifest import build_inference_service, manifest_yaml
from mlstages.components.deploy.smoke import SmokeTestResult


@dataclass(frozen=True)
class DeployResult:
    """What deploy did.

    target: "cluster" or "local".
    endpoint: the endpoint the smoke test used (locally: the model server, stopped afterwards).
    deployed: the model is now the champion (a full rollout that passed the smoke test).
    action: created / patched (cluster) or served (local).
    notes: what was decided and why, for the summary.
    manifest: the InferenceService applied, when it differs from the one built before the cluster
        was read (a Standard-mode canary names the model serving now as its stable predictor).
    """

    target: str
    model_name: str
    namespace: str
    model_uri: str
    endpoint: str
    deployed: bool
    action: str
    smoke: SmokeTestResult
    champion: dict[str, Any] | None
    previous_champion: str | None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None


def render_markdown(result: DeployResult, manifest: Mapping[str, Any], checks: Sequence[str] = ()) -> str:
    """The step's summary: where the model went, the smoke test, the champion, the notes."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    where = (
        f"InferenceService {result.namespace}/{result.model_name}"
        if result.target == "cluster"
        else "the local model server (no cluster configured)"
    )
    if result.champion:
        state = "deployed and promoted to champion"
    elif result.deployed:
        state = "deployed (no model_registry: no champion pointer to move)"
    else:
        state = "deployed as a canary, not promoted to champion"
    lines = [
        "# Deploy",
        "",
        markdown_text(f"{result.model_uri} was {state} on {where}."),
        "",
    ]
    if result.target == "local":
        lines += [markdown_text(f"{NO_CLUSTER_NOTE.capitalize()}."), ""]
    predictor = (manifest.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") or {}
    rows = [
        {"setting": "endpoint", "value": result.endpoint},
        {"setting": "action", "value": result.action},
        {"setting": "runtime", "value": model.get("runtime")},
        {"setting": "protocol", "value": model.get("protocolVersion")},
        {
            "setting": "deployment mode",
            "value": (manifest.get("metadata") or {}).get("annotations", {}).get(DEPLOYMENT_MODE_ANNOTATION),
        },
        {"setting": "replicas", "value": f"{predictor.get('minReplicas')}-{predictor.get('maxReplicas')}"},
        {"setting": "service account", "value": predictor.get("serviceAccountName")},
        {"setting": "previous champion", "value": result.previous_champion or "(none)"},
        {"setting": "champion now", "value": (result.champion or {}).get("model_uri", "(unchanged)")},
    ]
    if predictor.get("canaryTrafficPercent") is not None:
        rows.append({"setting": "canary traffic", "value": f"{predictor['canaryTrafficPercent']}%"})
    for canary in (manifest.get("spec") or {}).get("canary") or []:
        stable = (predictor.get("model") or {}).get("storageUri")
        rows.append(
            {
                "setting": "canary traffic (spec.canary)",
                "value": f"{canary.get('trafficPercent')}%, rest to {stable}",
            }
        )
    lines += [markdown_table(rows, ["setting", "value"]), ""]
    smoke = result.smoke
    verdict = "the same predictions as the model" if smoke.compared else "one prediction per row"
    lines += [
        "## Smoke test",
        "",
        markdown_text(
            f"POST {smoke.url} ({smoke.protocol}) with {smoke.rows} row(s) of the test split: "
            f"HTTP {smoke.status_code} in {smoke.seconds * 1000:.0f} ms, {verdict}."
        ),
        "",
    ]
    if result.conditions:
        lines += [
            "## Status conditions",
            "",
            markdown_table(result.conditions, ["type", "status", "reason", "message"]),
            "",
        ]
    notes = [*checks, *(n for n in result.notes if n != NO_CLUSTER_NOTE)]  # said above already
    if notes:
        lines += ["## Notes", ""] + [f"- {markdown_text(n)}" for n in notes] + [""]
    return "\n".join(lines)


EXAMPLE_CONFIG = {"model_name": "penguins", "namespace": "mlstages"}


EXAMPLE_STORAGE_URI = "gs://mlstages-models/models/penguins/20250101T000000Z-0123abcd"


EXAMPLE_HEADER = (
    "An InferenceService as mlstages deploy writes it, for a model published to the registry\n"
    "gs://mlstages-models/models. Generated by build_inference_service: do not edit; regenerate with\n"
    "  .venv/bin/python -m mlstages.components.deploy.deploy > manifests/inference-service.example.yaml\n"
    "The deploy step writes the same object for every model it deploys (its inference_service\n"
    "output) and applies it; to apply this one by hand, change storageUri to a published version."
)


def example_inference_service_yaml() -> str:
    """manifests/inference-service.example.yaml: a test checks the file equals this."""
    return manifest_yaml(
        build_inference_service(DeployConfig(**EXAMPLE_CONFIG), EXAMPLE_STORAGE_URI), EXAMPLE_HEADER
    )
