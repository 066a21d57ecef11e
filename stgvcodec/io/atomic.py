"""Outputs that appear under their final name only when complete.

A file or directory is built under a hidden sibling name and renamed onto the final name at the
end. The sibling lives in the same directory, so the rename stays on one file system and is atomic.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StagedPath:
    """A temporary sibling of `final` (`.name.partXXXXXXXX.ext`) that replaces it on commit.

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
        for _ in range(100):
            name = f".{self.final.stem}.part{secrets.token_hex(4)}{self.final.suffix}"
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
