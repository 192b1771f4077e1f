"""Container image names: the one place that decides them.

Standard library only, because every component module imports it at module top level.
The tag is the suite's version; the registry prefix comes from MLSTAGES_REGISTRY, so a private
registry is one setting (``mlstages compile --registry`` sets it before compiling).
"""

from __future__ import annotations

import os

from mlstages.components import __version__

REGISTRY_ENV = "MLSTAGES_REGISTRY"
DEFAULT_REGISTRY = "ghcr.io/mlstages"


def registry() -> str:
    return os.environ.get(REGISTRY_ENV, DEFAULT_REGISTRY).rstrip("/")


def image(stage: str, prefix: str | None = None) -> str:
    """The image that runs ``stage``: ``REGISTRY/mlstages-<stage>:<version>``, REGISTRY being
    ``prefix`` if given, else MLSTAGES_REGISTRY's."""
    return f"{(prefix or registry()).rstrip('/')}/mlstages-{stage.replace('_', '-')}:{__version__}"
