"""Every component folder has a metadata.yaml in kubeflow/pipelines-components' shape, and the
generated README shows it."""

from __future__ import annotations

import pytest
import yaml

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog
from mlstages.tooling.component_metadata import (
    REQUIRED_KEYS,
    STABILITIES,
    component_metadata,
    metadata_path,
    parse_metadata,
)


@pytest.mark.parametrize("stage", sorted(catalog.COMPONENTS))
def test_every_component_has_valid_metadata(stage):
    meta = component_metadata(stage)
    assert meta.name == stage and meta.stability in STABILITIES
    assert any(d.name == "Pipelines" for d in meta.kubeflow)
    readme = (catalog.COMPONENTS_DIR / stage / "README.md").read_text()
    assert f"- **Stability**: {meta.stability}" in readme
    assert f"- **Last verified**: {meta.last_verified.isoformat()}" in readme


def _valid() -> dict:
    return yaml.safe_load(metadata_path("train").read_text())


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_a_missing_key_is_named(key):
    data = _valid()
    del data[key]
    with pytest.raises(ParameterError, match=f"lacks key\\(s\\) {key}"):
        parse_metadata(data, "components/train/metadata.yaml", "train")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "trainer"}, "the folder is 'train'"),
        ({"stability": "experimental"}, "stability 'experimental'"),
        ({"owners": {"reviewers": ["x"]}}, "owners.approvers"),
        ({"dependencies": {"external_services": []}}, "dependencies.kubeflow"),
        ({"tags": []}, "tags must be"),
        ({"lastVerified": "yesterday"}, "lastVerified 'yesterday'"),
    ],
)
def test_a_malformed_value_is_named(change, message):
    data = _valid() | change
    with pytest.raises(ParameterError, match=message):
        parse_metadata(data, "components/train/metadata.yaml", "train")
