"""Output shared by the tools: a JSON report on stdout and, optionally, in a file."""

from __future__ import annotations

import json
import sys

from stgvcodec.io.atomic import write_atomic
from stgvcodec.io.outputs import OutputError, check_output


def check_json_output(path: str | None, *inputs: str) -> None:
    """Exits with one line unless `path` (the --json file) can be written and is none of `inputs`;
    call it before any work."""
    if path:
        try:
            check_output(path, tuple(inputs))
        except OutputError as err:
            sys.exit(f"{sys.argv[0]}: {err}")


def emit(report: dict, path: str | None) -> None:
    """Prints `report` as indented JSON and writes the same text to `path` when given (the file
    appears only when complete)."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        write_atomic(path, (text + "\n").encode())
