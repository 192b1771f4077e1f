"""Shared fixtures: the KFP local runner, and the embedded GCS emulator (tests/conftest_gcs.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Google's auth libraries must never look for credentials on the network in tests: with none they
# probe the metadata server, which is not on loopback.
os.environ.setdefault("NO_GCE_CHECK", "true")
os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")
os.environ.setdefault("GCE_METADATA_IP", "127.0.0.1:9")
# Tests are local runs even where CI runs them in a Kubernetes pod: deploy may serve with
# cluster='none' (tests/unit/test_deploy.py clears this to test the refusal).
os.environ.setdefault("MLSTAGES_LOCAL_RUN", "1")

sys.path.insert(0, str(Path(__file__).parent))
pytest_plugins = ["conftest_gcs"]


@pytest.fixture
def kfp_local(tmp_path):
    """kfp.local with the subprocess runner in this environment; runs go under tmp_path/root."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield tmp_path


@pytest.fixture
def penguins_parquet(tmp_path) -> str:
    """The built-in dataset as a Parquet file, the input of most component tests."""
    import palmerpenguins

    from mlstages.components.common.dataset_files import write_dataset

    path = tmp_path / "penguins.parquet"
    write_dataset(palmerpenguins.load_penguins(), path)
    return str(path)


@pytest.fixture
def progress_lines():
    """The progress lines reported while the test runs (the logger a task turns into its log)."""
    import logging

    from mlstages.components.common.progress import LOGGER_NAME

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(LOGGER_NAME)
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)
