"""Output shared by the tools: a JSON report on stdout and, optionally, in a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict, path: str | None) -> None:
    """Prints `report` as indented JSON and writes the same text to `path` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
