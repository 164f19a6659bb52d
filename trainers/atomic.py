"""Atomic file replacement, shared by everything that writes results or models.

A reader sees either the old file or the new one, never a torn one: the new content goes to a
dot-file in the same folder (dataset readers skip dot-files), is synced, then renamed over the
target, and the folder is synced so the rename survives a power cut.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


def write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            Path(temporary).unlink(missing_ok=True)
        except OSError:
            # A leftover dot-file is harmless: readers skip it and the next write uses a new name.
            logger.debug("could not remove temporary file %s", temporary)
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename durable; some systems cannot open folders, and then there is nothing to do."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
