"""The artifact folder checked before a command writes anything, in the storage or there.

Workers write epoch checkpoints and kept weights into it, `hpo compare` and `hpo claims`
their report files. A folder that cannot take them would otherwise fail every trial (each
with an OSError as its reason) and spend the budget on failures, so the commands that write
there check it first: it exists or can be created, is a folder, takes a file, and has
MIN_FREE_MB free. Any failure is one line (HpoError) naming the folder and what to do.
Torch-free: a bad folder is refused before torch loads.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from hpo.errors import HpoError

# Enough for the checkpoints and kept weights of a few trials of the models hpo builds (a
# wide ResNet's checkpoint is tens of MB); a fuller disk would fail them mid-study.
MIN_FREE_MB = 100
MB = 2**20
_FIX = "give --artifacts (env HPO_ARTIFACTS) a folder this process can write"


def check_artifacts(folder: str | os.PathLike[str], *, min_free_mb: int = MIN_FREE_MB) -> Path:
    """The artifact folder, created if absent; HpoError in one line if it cannot be used.

    Writing is tried (a temporary file, removed at once) rather than judged from the mode
    bits: root writes through 0555, nobody through a read-only mount or a full disk.
    """
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".hpo-write-check-"):
            pass
    except OSError as exc:
        raise HpoError(f"artifact folder {path} {_why(path, exc)}; {_FIX}") from None
    free_mb = shutil.disk_usage(path).free / MB
    if free_mb < min_free_mb:
        raise HpoError(
            f"artifact folder {path}: only {free_mb:.0f} MB free, hpo needs at least "
            f"{min_free_mb} MB for checkpoints and kept weights; free some space or {_FIX}"
        )
    return path


def _why(path: Path, error: OSError) -> str:
    """What is in the way, in words: the file that stands where a folder must be, or the
    system's reason (permission denied, read-only file system, no space left)."""
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            return f"cannot be a folder: {blocking} is a file"
    return f"cannot be created or written ({error.strerror or error})"
