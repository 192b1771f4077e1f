"""The data a retraining learns from: the labelled window of new data, under a window policy.

Retraining on the original training data alone learns nothing new: the model it makes is the one
it replaces (the same sha256). So when monitoring decides to retrain, this stage builds the
training data from the window that triggered it:

- ``append`` (the default): the original data and the window's labelled rows;
- ``sliding``: the last ``max_windows`` labelled windows, this one included (older ones come from
  the window archive);
- ``window``: the window's labelled rows alone.

Every labelled window is archived under ``<registry>/<model>/windows/`` (the sliding policy's
memory), and the assembled table is published under ``<registry>/<model>/training-data/``, both
with if-absent writes, so the training pipeline ingests an immutable URI and the model card's
lineage names each part (role, URI, rows, content hash). A window without labels cannot teach a
model: ``append`` then trains on the original data and says so; the other policies refuse.

The policies are pure functions over parts (local data with their rows, columns and hash) here;
``streaming`` reads and writes the rows a chunk at a time, and the component moves the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlstages.components.common.errors import InputDataError, ParameterError, require_choice

APPEND = "append"
SLIDING = "sliding"
WINDOW = "window"
WINDOW_POLICIES = (APPEND, SLIDING, WINDOW)

WINDOWS_FOLDER = "windows"
TRAINING_DATA_FOLDER = "training-data"


@dataclass(frozen=True)
class TrainingDataConfig:
    """How to build retraining data.

    data_uri: the original training data (read for ``append``).
    label_column: the label; only rows that have it are learned from.
    window_policy: append, sliding or window (see the module docstring).
    max_windows: how many of the newest labelled windows ``sliding`` trains on, at least 1.
    """

    data_uri: str
    label_column: str
    window_policy: str = APPEND
    max_windows: int = 3

    def __post_init__(self) -> None:
        require_choice("window_policy", self.window_policy, WINDOW_POLICIES)
        if not str(self.label_column).strip():
            raise ParameterError("parameter label_column is empty: retraining needs the label's name")
        if (
            isinstance(self.max_windows, bool)
            or not isinstance(self.max_windows, int)
            or self.max_windows < 1
        ):
            raise ParameterError(
                f"parameter max_windows={self.max_windows!r} must be a whole number of at least 1"
            )
        if self.window_policy == APPEND and not str(self.data_uri).strip():
            raise ParameterError("window_policy='append' needs data_uri: the original training data")


@dataclass(frozen=True)
class Part:
    """One part of the assembled training data: what it is, where from, and where its rows are
    on local disk (a dataset folder) with their count, columns and content hash."""

    role: str
    uri: str
    path: Path
    rows: int
    columns: tuple[str, ...]
    content_hash: str


def labelled_rows(window: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """The window's rows that have a label (none when the window has no label column); applied
    to each chunk of the window."""
    if label_column not in window.columns:
        return window.iloc[0:0]
    return window[window[label_column].notna()].reset_index(drop=True)


def check_aligned(part: Part, columns: Sequence[str]) -> None:
    """An error naming the columns of the training data ``part`` lacks."""
    missing = [c for c in columns if c not in part.columns]
    if missing:
        raise InputDataError(
            f"the {part.role} at {part.uri} lacks column(s) {', '.join(map(repr, missing))} of the training data; "
            "a window must carry every column the model was trained on"
        )


def choose_parts(
    config: TrainingDataConfig, window: Part, base: Part | None, archived: Sequence[Part] = ()
) -> tuple[list[Part], list[str]]:
    """The parts the training data holds under ``config.window_policy``, in order, and notes for
    the summary. ``window`` holds the labelled rows of this run's window; ``base`` the original
    data (``append``); ``archived`` the earlier labelled windows, oldest first (``sliding``)."""
    notes: list[str] = []
    if window.rows == 0:
        if config.window_policy != APPEND:
            raise InputDataError(
                f"the window at {window.uri} has no row with a {config.label_column!r} label, so "
                f"window_policy={config.window_policy!r} has nothing to train on; label the window, or "
                "use window_policy='append' to retrain on the original data"
            )
        notes.append(
            f"The window has no row with a {config.label_column!r} label: the model is retrained on the "
            "original data alone, and cannot learn from the new rows."
        )
    if config.window_policy == APPEND:
        assert base is not None, "append needs the original data"
        parts = [base] + ([window] if window.rows else [])
    elif config.window_policy == WINDOW:
        parts = [window]
    else:
        earlier = list(archived)[-(config.max_windows - 1) :] if config.max_windows > 1 else []
        parts = [*earlier, window]
        if len(earlier) < config.max_windows - 1:
            notes.append(
                f"{len(earlier) + 1} labelled window(s) so far, fewer than max_windows={config.max_windows}."
            )
    for part in parts[1:]:
        check_aligned(part, parts[0].columns)
    return parts, notes


def repeated_note(count: int) -> str:
    """The summary's note on the rows left out as repeats."""
    return f"{count} row(s) repeating an earlier row were left out."


def render_markdown(
    config: TrainingDataConfig, parts: Sequence[Part], rows: int, uri: str, notes: Sequence[str]
) -> str:
    """The summary: the policy, each part with its rows, and where the assembled data went."""
    from mlstages.components.common.reports import markdown_table, markdown_text

    table = [{"part": p.role, "uri": p.uri, "rows": p.rows} for p in parts]
    lines = [
        "# Training data",
        "",
        f"Window policy **{config.window_policy}**"
        + (f" (the newest {config.max_windows} windows)" if config.window_policy == SLIDING else "")
        + f": **{rows:,}** rows, published as `{markdown_text(uri)}`; the training pipeline ingests them.",
        "",
        markdown_table(table, ["part", "uri", "rows"]),
        "",
    ]
    lines += [f"- {markdown_text(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def lineage_parts(parts: Sequence[Part]) -> list[dict[str, Any]]:
    """The lineage sources of the assembled data: each part with its role, URI, rows and content
    hash."""
    return [
        {
            "uri": part.uri,
            "rows": part.rows,
            "columns": len(part.columns),
            "content_hash": part.content_hash,
            "role": part.role,
        }
        for part in parts
    ]
