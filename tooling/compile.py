"""Compile every component and pipeline to KFP IR YAML, and generate each component's README and
the component catalog (docs/components.md).

The YAML and the Markdown are committed; ``stale_files`` tells which of them differ from what the
code would generate now, so tests and CI catch a stale file.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import compiler

from mlstages.components.common.errors import ParameterError
from mlstages.tooling import catalog
from mlstages.tooling.component_metadata import component_metadata, metadata_markdown

# The last line of every component YAML's description: which release of the suite the file is and
# which image its step runs. ASCII only, because KFP writes the YAML in the locale's encoding.
RELEASE_LINE = "Version: mlstages {version} (image {image})"
_RELEASE_PATTERN = re.compile(r"Version: mlstages (?P<version>\S+) \(image (?P<image>\S+)\)")


def _compile_to_text(obj: object) -> str:
    """The KFP YAML of a component or pipeline, as ``kfp.compiler.Compiler`` writes it."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "out.yaml"
        compiler.Compiler().compile(obj, str(path))
        return path.read_text(encoding="utf-8")


def component_image(component: Any) -> str:
    """The container image a component's step runs, as compiled into it."""
    return component.component_spec.implementation.container.image


def release_line(component: Any) -> str:
    from mlstages.components import __version__

    return RELEASE_LINE.format(version=__version__, image=component_image(component))


def released(component: Any) -> Any:
    """A copy of ``component`` whose description ends with its release line, for its YAML.

    Only the copy's ``description`` differs. KFP writes a component's description into the YAML's
    header comment alone, not into the PipelineSpec, so the compiled spec (the cache key, the
    pipelines that use the component) is exactly that of the component in the package.
    """
    stamped = copy.copy(component)
    stamped.description = f"{(component.description or '').rstrip()}\n\n{release_line(component)}"
    return stamped


def read_release(component_yaml: str, source: str = "component YAML") -> tuple[str, str]:
    """The (version, image) a component YAML's header says it is; ``source`` names the file in
    the error when it has no release line (a YAML that ``mlstages compile`` did not write)."""
    header = []
    for line in component_yaml.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    for line in reversed(header):
        match = _RELEASE_PATTERN.fullmatch(line)
        if match:
            return match["version"], match["image"]
    raise ParameterError(
        f"{source}: no release line ({RELEASE_LINE.format(version='X', image='Y')}) in its header; "
        "it was not written by `mlstages compile`"
    )


@dataclass(frozen=True)
class InputDoc:
    name: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class OutputDoc:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class ComponentDoc:
    """What the docs say about a component, from its docstring and compiled interface."""

    stage: str
    summary: str
    details: list[str]
    image: str
    inputs: list[InputDoc]
    outputs: list[OutputDoc]


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _format_default(spec: object) -> str:
    if not getattr(spec, "optional", False):
        return "required"
    default = getattr(spec, "default", None)
    return "`None`" if default is None else f"`{default!r}`"


def _type_name(type_name: str) -> str:
    return type_name.split("@", 1)[0]


def component_doc(stage: str) -> ComponentDoc:
    comp = catalog.component(stage)
    spec = comp.component_spec
    summary, _, details = (spec.description or "").strip().partition("\n\n")
    return ComponentDoc(
        stage=stage,
        summary=_one_line(summary),
        details=[_one_line(p) for p in details.strip().split("\n\n") if p.strip()],
        image=component_image(comp),
        inputs=[
            InputDoc(name, _type_name(item.type), _format_default(item), _one_line(item.description))
            for name, item in (spec.inputs or {}).items()
        ],
        outputs=[
            OutputDoc(name, _type_name(item.type), _one_line(item.description))
            for name, item in (spec.outputs or {}).items()
        ],
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _interface_tables(doc: ComponentDoc, heading: str) -> list[str]:
    """The inputs and outputs tables under ``heading`` (the Markdown heading prefix, ``##`` ...)."""
    lines = [f"{heading} Inputs", "", "| name | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{i.name}` | {i.type} | {i.default} | {_cell(i.description)} |" for i in doc.inputs]
    lines += ["", f"{heading} Outputs", "", "| name | type | description |", "|---|---|---|"]
    lines += [f"| `{o.name}` | {o.type} | {_cell(o.description)} |" for o in doc.outputs]
    return [*lines, ""]


def component_readme(stage: str) -> str:
    """The README of a component, generated from its docstring and its compiled interface."""
    from mlstages.components import __version__

    doc = component_doc(stage)
    lines = [
        f"# {stage}",
        "",
        "<!-- Generated by `mlstages compile` from the component's docstring. Do not edit. -->",
        "",
        doc.summary,
        "",
    ]
    lines += [paragraph + "\n" for paragraph in doc.details]
    lines += [f"Image: `{doc.image}` (mlstages {__version__}).", ""]
    lines += _interface_tables(doc, "##")
    lines += metadata_markdown(component_metadata(stage))
    lines += [
        "## Use it in your pipeline",
        "",
        "```python",
        "from kfp import components",
        "",
        f"{stage} = components.load_component_from_url(",
        f'    "{catalog.component_url(stage, __version__)}"',
        ")",
        "```",
        "",
        f"Or from the installed package: `from {catalog.COMPONENTS[stage].split(':')[0]} import {stage}`.",
        "",
        "Pinning a release, running from your own registry, a whole example: "
        "[docs/reuse.md](../../docs/reuse.md).",
        "",
    ]
    return "\n".join(lines)


def catalog_page() -> str:
    """docs/components.md: every component's summary, interface, image and files on one page."""
    from mlstages.components import __version__

    docs = [component_doc(stage) for stage in catalog.COMPONENTS]
    lines = [
        "# Component catalog",
        "",
        "<!-- Generated by `mlstages compile` from the components' docstrings. Do not edit. -->",
        "",
        f"The {len(docs)} components of mlstages {__version__}, in pipeline order. Each one is a "
        "versioned `component.yaml` that loads with `kfp.components.load_component_from_url`, and a "
        "Python object in the installed package; [reuse.md](reuse.md) shows both, with a whole "
        "pipeline built from three of them. Outputs typed `system.Metrics`, "
        "`system.ClassificationMetrics`, `system.HTML` and `system.Markdown` render in the Kubeflow "
        "UI ([where to look](../README.md#run-on-a-kubeflow-cluster)).",
        "",
        "| component | what it does |",
        "|---|---|",
    ]
    lines += [f"| [`{doc.stage}`](#{doc.stage}) | {_cell(doc.summary)} |" for doc in docs]
    lines.append("")
    for doc in docs:
        folder = f"../components/{doc.stage}"
        lines += [
            f"## {doc.stage}",
            "",
            doc.summary,
            "",
            f"Image `{doc.image}` · [README]({folder}/README.md) · [component.yaml]({folder}/component.yaml)"
            f" · URL `{catalog.component_url(doc.stage, __version__)}`",
            "",
        ]
        lines += _interface_tables(doc, "###")
    return "\n".join(lines)


def generated_files() -> dict[Path, str]:
    """Every generated file and the text it should have now."""
    files: dict[Path, str] = {}
    for stage in catalog.COMPONENTS:
        files[catalog.component_yaml_path(stage)] = _compile_to_text(released(catalog.component(stage)))
        files[catalog.component_readme_path(stage)] = component_readme(stage)
    files[catalog.catalog_page_path()] = catalog_page()
    for name in catalog.PIPELINES:
        files[catalog.pipeline_yaml_path(name)] = _compile_to_text(catalog.pipeline(name))
    return files


def write_all(registry: str | None = None) -> list[Path]:
    """Write every generated file; return the paths that changed."""
    if registry:
        from mlstages.components.common.images import REGISTRY_ENV

        os.environ[REGISTRY_ENV] = registry
    changed = []
    for path, text in generated_files().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def compile_for_cluster(settings_path: Path, output_dir: Path, registry: str | None = None) -> list[Path]:
    """Compile every pipeline with a platform settings file into ``output_dir`` (not committed:
    the result is specific to one cluster)."""
    from mlstages.tooling.platform import load_settings

    if registry:
        from mlstages.components.common.images import REGISTRY_ENV

        os.environ[REGISTRY_ENV] = registry
    settings = load_settings(settings_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in catalog.PIPELINES:
        path = output_dir / catalog.pipeline_yaml_path(name).name
        path.write_text(pipeline_yaml(name, settings), encoding="utf-8")
        written.append(path)
    return written


def pipeline_yaml(name: str, settings: object = None) -> str:
    """The compiled YAML of pipeline ``name`` with platform settings (PlatformSettings or None):
    what ``compile_for_cluster`` writes, and what ``mlstages submit`` uploads."""
    return _compile_to_text(catalog.pipeline(name, settings))


def stale_files() -> list[Path]:
    """Generated files that differ from what the code generates now (or are missing)."""
    return [
        path
        for path, text in generated_files().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
