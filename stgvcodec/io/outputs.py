"""Checks on an output path made before any work: it is not an input, and it can be written.

    check_output(output, inputs, expected_bytes) ─┬─ resolves to an input? (same path, symlink, hard link) ─> refuse
                                                  ├─ parent missing / not writable?  (a real file is created) ─> refuse
                                                  ├─ an existing directory?                                 ─> refuse
                                                  └─ less free disk than expected_bytes?                    ─> refuse

An encode that can only fail at the end is a waste of minutes to hours, so `stgv encode`, `stgv
decode` and the tools call this before reading a frame.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .atomic import StagedPath


class OutputError(ValueError):
    """An output path that cannot be used; the message is one line for the user."""


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same path, a symbolic link to it, or a hard link."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would resolve to
        return Path(a).resolve() == Path(b).resolve()


def check_output(
    output: str | os.PathLike,
    inputs: tuple[str | os.PathLike, ...] = (),
    *,
    expected_bytes: int = 0,
    directory: bool = False,
) -> None:
    """Refuses an output that would overwrite an input or cannot be written, before any work.

    Args:
        output: the file (or, with `directory`, the directory) to be written.
        inputs: paths that must not be overwritten.
        expected_bytes: about how large the output will be; refused when the disk has less free.
        directory: whether the output is a directory (of PNGs).

    Raises:
        OutputError: naming the output and what is wrong, in one line.
    """
    output = Path(output)
    for source in inputs:
        if same_file(output, source):
            raise OutputError(f"{output}: is the input {source}; refusing to overwrite it")
    if output.is_dir() and not directory:
        raise OutputError(f"{output}: is a directory")
    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"{output}: {parent} is not an existing directory")
    try:
        # A real file is created and removed: permission bits, read-only mounts and quotas all
        # show up here, where os.access() would be wrong for root or network file systems.
        StagedPath(output).discard()
    except OSError as err:
        raise OutputError(f"{output}: cannot write in {parent} ({err.strerror or err})") from None
    check_free_space(output, expected_bytes)


def check_free_space(output: str | os.PathLike, expected_bytes: int) -> None:
    """Refuses an output of about `expected_bytes` where its directory has less free disk.

    Raises:
        OutputError: naming the output, the size and the free space, in one line.
    """
    parent = Path(output).parent
    free = shutil.disk_usage(parent).free
    if expected_bytes > free:
        raise OutputError(
            f"{output}: needs about {_megabytes(expected_bytes)}, {parent} has {_megabytes(free)} free"
        )


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"
