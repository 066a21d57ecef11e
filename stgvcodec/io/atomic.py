"""Outputs that appear under their final name only when complete.

A file or directory is built under a hidden sibling name and renamed onto the final name at the
end. The sibling lives in the same directory, so the rename stays on one file system and is atomic.

The sibling is named `.NAME.stgv-part-HOST-PID-RANDOM.EXT` (HOST a short hash of the host name,
PID the writing process). A process that is killed outright (SIGKILL, a power cut) cannot remove
it; the next output to the same name on the same host removes every such sibling whose process
no longer runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PART_MARK = ".stgv-part-"
"""What every temporary sibling's name holds after `.NAME`."""
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


class StagedPath:
    """A temporary sibling of `final` (`.NAME.stgv-part-HOST-PID-RANDOM.EXT`) that replaces it on commit.

    The sibling is created empty at once (a file, or a directory with `directory=True`), so the
    name is reserved; write into `tmp`, then call `commit()` or `discard()` exactly once.
    """

    def __init__(self, final: Path, *, directory: bool = False):
        self.final = final
        """Where the output ends up."""
        self.directory = directory
        """Whether the output is a directory."""
        self.tmp = self._reserve()
        """The sibling to write into."""

    def commit(self) -> None:
        """Renames `tmp` onto `final`: replaces a file, or an empty directory when `directory`.

        Raises:
            OSError: when `final` is a non-empty directory or of the other kind.
        """
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        """Removes `tmp` and everything in it; never raises for a missing one."""
        if self.directory:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)

    def _reserve(self) -> Path:
        # The real suffix stays last so that tools guessing the format by extension still work.
        # Mode 0o666/0o777 lets the umask decide, as for any new file (mkstemp would force 0o600).
        remove_stale_parts(self.final)
        for _ in range(100):
            name = f".{self.final.stem}{PART_MARK}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{self.final.suffix}"
            tmp = self.final.with_name(name)
            try:
                if self.directory:
                    os.mkdir(tmp, 0o777)
                else:
                    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            return tmp
        raise FileExistsError(f"{self.final}: no free temporary name beside it")


def remove_stale_parts(final: Path) -> list[Path]:
    """Removes the temporary siblings of `final` left by processes of this host that no longer run.

    Returns:
        The paths removed.
    """
    pattern = re.compile(
        re.escape(f".{final.stem}{PART_MARK}{_HOST}-") + r"(\d+)-[0-9a-f]{8}" + re.escape(final.suffix) + "$"
    )
    removed = []
    try:
        siblings = list(final.parent.iterdir())
    except OSError:
        return removed
    for path in siblings:
        match = pattern.match(path.name)
        if not match or _running(int(match.group(1))):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid we can ask about: leave its file alone
    return True


@contextmanager
def staged_file(final: str | os.PathLike) -> Iterator[Path]:
    """The temporary sibling to write `final` into: renamed onto `final` when the block ends,
    removed when it raises.

    Example:
        with staged_file("plot.png") as tmp:
            figure.savefig(tmp, format="png")
    """
    staged = StagedPath(Path(final))
    try:
        yield staged.tmp
        staged.commit()
    except BaseException:
        staged.discard()
        raise


def write_atomic(final: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `final`; the file appears only when complete."""
    with staged_file(final) as tmp:
        tmp.write_bytes(data)
