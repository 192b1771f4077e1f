"""fetch_champion's logic is the registry's: ``registry.download_champion`` reads the champion
pointer and downloads that version. This module names it for the stage's folder contract."""

from mlstages.components.common.registry import download_champion

__all__ = ["download_champion"]
