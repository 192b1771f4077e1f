"""Helpers for tests that interrupt real transfers: seeded files and how much a server has read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIB = 1024 * 1024


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of ``size`` seeded random bytes, written in chunks."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        remaining = size
        while remaining:
            chunk = min(remaining, 16 * MIB)
            handle.write(rng.bytes(chunk))
            remaining -= chunk
    return path


def bytes_read_by(pid: int) -> int:
    """Bytes the process has read (files and sockets): how far an upload to a server has got."""
    with open(f"/proc/{pid}/io") as handle:
        for line in handle:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/<pid>/io")
