"""tools/make_conformance.py holds what the vectors are and how their dumps are computed; the tests
import it as tests/tools/ import the tools, with tools/ on sys.path."""

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))
