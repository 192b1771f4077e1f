"""The component catalog (docs/components.md) and the component READMEs: generated from the
docstrings and the compiled interfaces, with every input, default and output, and links that
resolve (in docs/reuse.md too). (Freshness of the committed files: tests/test_packaging.py.)"""

from __future__ import annotations

import re

import pytest

from mlstages.components import __version__
from mlstages.tooling import catalog
from mlstages.tooling.compile import catalog_page, component_image, component_readme

LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _section(page: str, stage: str) -> str:
    assert f"\n## {stage}\n" in page, f"no section for {stage}"
    return page.split(f"\n## {stage}\n", 1)[1].split("\n## ", 1)[0]


def _row(section: str, name: str) -> str:
    rows = [line for line in section.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"{name}: {len(rows)} rows"
    return rows[0]


@pytest.mark.parametrize("stage", list(catalog.COMPONENTS))
def test_catalog_lists_the_interface_of_every_component(stage):
    section = _section(catalog_page(), stage)
    inputs, _, outputs = section.partition("### Outputs")
    component = catalog.component(stage)
    spec = component.component_spec
    assert f"Image `{component_image(component)}`" in section
    assert catalog.component_url(stage, __version__) in section
    for name, item in spec.inputs.items():
        row = _row(inputs, name)
        if item.optional:
            assert f"| `{item.default!r}` |" in row or (item.default is None and "| `None` |" in row), row
        else:
            assert "| required |" in row, row
    for name, item in spec.outputs.items():
        assert f"| {item.type.split('@')[0]} |" in _row(outputs, name)
    # The summary is the docstring's first paragraph, on one line.
    assert " ".join(spec.description.split("\n\n")[0].split()) in section


def test_catalog_index_links_every_section():
    page = catalog_page()
    for stage in catalog.COMPONENTS:
        assert f"| [`{stage}`](#{stage}) |" in page


@pytest.mark.parametrize(
    ("path", "text"),
    [(catalog.catalog_page_path(), catalog_page())]
    + [(catalog.component_readme_path(s), component_readme(s)) for s in catalog.COMPONENTS]
    + [(catalog.DOCS_DIR / "reuse.md", (catalog.DOCS_DIR / "reuse.md").read_text(encoding="utf-8"))],
    ids=lambda value: value.name if hasattr(value, "name") else "",
)
def test_relative_links_resolve(path, text):
    for target, _ in LINK.findall(text):
        if "://" in target:
            continue
        assert (path.parent / target).resolve().exists(), f"{path.name} links to missing {target}"


def test_component_readme_pins_the_release_url():
    readme = component_readme("train")
    assert f'"{catalog.component_url("train", __version__)}"' in readme
    assert catalog.component_url("train", "1.2.3") == (
        "https://raw.githubusercontent.com/mlstages/mlstages/v1.2.3/components/train/component.yaml"
    )
