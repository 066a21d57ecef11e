"""Output shared by the tools: a JSON report on stdout and, optionally, in a file."""

from __future__ import annotations

import json
import sys

try:
    from stgvcodec.io.atomic import write_atomic
    from stgvcodec.io.outputs import OutputError, check_output
except ImportError:  # an older revision of the package, which fit_bench --baseline-ref runs: it writes a temporary file
    write_atomic = check_output = None


def check_json_output(path: str | None, *inputs: str) -> None:
    """Exits with one line unless `path` (the --json file) can be written and is none of `inputs`;
    call it before any work."""
    if path and check_output is not None:
        try:
            check_output(path, tuple(inputs))
        except OutputError as err:
            sys.exit(f"{sys.argv[0]}: {err}")


def emit(report: dict, path: str | None) -> None:
    """Prints `report` as indented JSON and writes the same text to `path` when given (the file
    appears only when complete)."""
    text = json.dumps(report, indent=2)
    print(text)
    if path and write_atomic is None:
        with open(path, "w") as file:
            file.write(text + "\n")
    elif path:
        write_atomic(path, (text + "\n").encode())
