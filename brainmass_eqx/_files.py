"""Files the package writes for the user: fit and sweep checkpoints, saved trajectories.

Two rules shared by every writer:

- the path is checked when the run starts (`check_writable`), not when the first file is
  written: a fit that saves its checkpoint only at the end otherwise ran for its whole
  length, then failed on a missing folder and lost its result;
- a file is replaced whole or not at all (`atomic_write`): it is written under a name of
  its own in the same folder, flushed to disk, then renamed onto the path. A process killed
  while writing leaves the previous file intact, and two processes writing the same path
  leave one whole file (with one shared temporary name, the second writer truncated the
  first's, the first renamed it away mid-write, and the second's rename then failed).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_write", "check_writable"]

#: How a checkpoint names the precision it was written in (``jax_enable_x64`` on or off):
#: resumed in the other, every array's dtype differs.
PRECISION_WORDS = {True: "on (float64)", False: "off (float32)"}


def check_writable(path: str | os.PathLike, name: str) -> str:
    """Refuse, eagerly, a ``path`` that a file cannot be written to.

    **Arguments:**

    - `path`: the file that will be written (it need not exist yet).
    - `name`: the argument's name, for the message (e.g. ``'checkpoint'``).

    **Returns:** ``os.fspath(path)``.

    **Raises:** `IsADirectoryError` for a folder; `FileNotFoundError` when the folder it
    goes in does not exist; `PermissionError` when a file cannot be created in that folder
    (read-only, no permission).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}={path!r} is a folder; pass a file path in it, e.g. {os.path.join(path, 'fit.ckpt')!r}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"{name}={path!r}: the folder {folder!r} does not exist; create it first "
            "(os.makedirs(folder, exist_ok=True)) or pass a path in an existing folder."
        )
    # Creating a file is the one test that holds for read-only mounts, ACLs and root alike.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise PermissionError(
            f"{name}={path!r}: no file can be written in {folder!r} ({err.strerror or err}); "
            "pass a path in a writable folder."
        ) from err
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, name: str = "path") -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new contents to: on leaving the block it is
    flushed to disk and renamed onto ``path``; on an error it is removed and ``path`` is
    left as it was.

    **Arguments:**

    - `path`: the file to replace (or create).
    - `name`: the argument that gave it, for the messages of `check_writable` (a missing
      folder raised open()'s error about the temporary file's name).
    """
    path = check_writable(path, name)
    # A name no other writer uses (process, thread, and a random part for forked copies);
    # opened with "x" so that the file gets the usual permissions (umask), as open() gives.
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
