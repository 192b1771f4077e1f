"""The distribution maps every folder into the mlstages package, and generated files are fresh."""

from __future__ import annotations

import tomllib

from mlstages.tooling import catalog


def test_every_component_folder_is_a_listed_package():
    pyproject = tomllib.loads((catalog.REPO_ROOT / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["setuptools"]["packages"])
    folders = {
        f"mlstages.components.{p.name}"
        for p in catalog.COMPONENTS_DIR.iterdir()
        if (p / "__init__.py").exists()
    }
    assert folders <= packages, f"add to pyproject.toml packages: {sorted(folders - packages)}"


def test_every_stage_folder_has_its_whole_contract():
    for stage in catalog.COMPONENTS:
        folder = catalog.COMPONENTS_DIR / stage
        for name in (
            f"{stage}.py",
            "component.py",
            "metadata.yaml",
            "Dockerfile",
            "component.yaml",
            "README.md",
        ):
            assert (folder / name).exists(), f"components/{stage}/{name} is missing"


def test_component_modules_import_only_stdlib_and_kfp_at_top_level():
    import ast

    allowed = {"kfp", "mlstages", "__future__", "typing", "collections"}
    for stage in catalog.COMPONENTS:
        tree = ast.parse((catalog.COMPONENTS_DIR / stage / "component.py").read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                assert root in allowed, f"components/{stage}/component.py imports {name} at top level"
                if root == "mlstages":
                    # Only the stdlib-only image helper may be imported at module level.
                    assert name == "mlstages.components.common.images", name


def test_compiled_yaml_and_readmes_are_fresh():
    from mlstages.tooling.compile import stale_files

    stale = [str(p.relative_to(catalog.REPO_ROOT)) for p in stale_files()]
    assert not stale, f"stale generated files (run `make compile`): {stale}"


def test_every_component_caps_its_threads_first_then_logs_its_progress():
    """BLAS, OpenMP and joblib pools are sized when a library loads: the cap comes first, then the
    progress lines (a library call reports into nothing until the task says where its lines go)."""
    import ast
    from pathlib import Path

    from mlstages.components.common import task_start

    for stage in catalog.COMPONENTS:
        tree = ast.parse((catalog.COMPONENTS_DIR / stage / "component.py").read_text())
        [function] = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
        statements = function.body[1:3]  # after the docstring: the import, then the call
        assert isinstance(statements[0], ast.ImportFrom), stage
        assert statements[0].module == "mlstages.components.common.task_start", stage
        call = statements[1]
        assert isinstance(call, ast.Expr) and ast.unparse(call) == "start_task()", stage
    # start_task itself: the cap, then the log.
    [function] = [
        node
        for node in ast.parse(Path(task_start.__file__).read_text()).body
        if isinstance(node, ast.FunctionDef)
    ]
    calls = [ast.unparse(node.value) for node in function.body if isinstance(node, ast.Assign | ast.Expr)]
    assert calls[1:3] == ["limit_threads()", "to_task_log()"], calls
