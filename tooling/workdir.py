"""The folders the CLI writes to (its --workdir with the run folders and the embedded store's data
and log, a local --prediction-log): checked before anything starts, and a refused write named in
one line instead of an OSError's traceback.

A read-only or full workdir used to surface minutes into a run, or after the embedded store had
started, as a traceback from whichever library wrote first. Creating a probe file (and writing and
syncing a few bytes) asks the file system itself: permissions, a read-only mount, quotas, ACLs and
a full disk all answer there, as they do not to a look at the mode bits.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from mlstages.components.common.errors import MlstagesError

# The subfolders of the workdir the CLI writes into: kfp.local's run folders and the embedded
# store's objects and log (tooling/local.py). An existing one may belong to another user (a run
# made with sudo) even when the workdir itself is writable.
WORKDIR_PARTS = ("runs", "gcs")

_FULL = (errno.ENOSPC, errno.EDQUOT)
_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)

# The errors that are about the disk or the permissions, not about the suite: named in one line.
WRITE_ERRNOS = frozenset(_FULL + _REFUSED)


class NotWritable(MlstagesError):
    """A folder the CLI writes to is not writable, or its disk is full."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def write_error(path: str | os.PathLike, exc: OSError, option: str | None = "--workdir") -> NotWritable:
    """The one-line error for ``exc``, raised writing under ``path``: what happened, and what to do
    (``option`` is what the user passes to choose another folder, when there is one)."""
    where = Path(path).absolute()
    if exc.errno in _FULL:
        what = "no space left on its disk" if exc.errno == errno.ENOSPC else "the disk quota is used up"
        elsewhere = f"pass {option} with a folder on another disk" if option else "write to another disk"
        return NotWritable(f"cannot write to {where}: {what}; free some space or {elsewhere}", where)
    if exc.errno == errno.EROFS:
        reason = "the file system is read-only"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
    elif exc.errno in (errno.EEXIST, errno.ENOTDIR):
        reason = "a file is in the way of a folder there"
    else:
        reason = exc.strerror or str(exc)
    elsewhere = (
        f"pass {option} with a folder you can write to" if option else "choose a folder you can write to"
    )
    return NotWritable(f"cannot write to {where}: {reason}; {elsewhere}, or make this one writable", where)


def check_writable(folder: str | os.PathLike, option: str = "--workdir") -> Path:
    """Create ``folder`` (with its parents) and a probe file in it; return the folder.

    Raises:
        NotWritable: naming the folder (or the parent that could not be created) and ``option``.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # The parent that could not be created, which may be above the folder.
        raise write_error(exc.filename or folder, exc, option) from None
    try:
        # Removed on close: nothing is left behind in a folder that works.
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".mlstages-write-probe-") as probe:
            probe.write(b"mlstages")
            probe.flush()
            # A full disk may accept the write into the page cache and refuse it only here.
            os.fsync(probe.fileno())
    except OSError as exc:
        raise write_error(folder, exc, option) from None
    return folder


def check_workdir(workdir: str | os.PathLike, option: str = "--workdir") -> Path:
    """``check_writable`` on the workdir and on each of its parts the CLI writes into that exists."""
    workdir = check_writable(workdir, option)
    for part in WORKDIR_PARTS:
        if (workdir / part).is_dir():
            check_writable(workdir / part, option)
    return workdir
