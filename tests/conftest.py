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

sys.path.insert(0, str(Path(__file__).parent))
pytest_plugins = ["conftest_gcs"]


@pytest.fixture
def kfp_local(tmp_path):
    """kfp.local with the subprocess runner in this environment; yields the run root."""
    from kfp import local

    root = tmp_path / "kfp-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    yield root
