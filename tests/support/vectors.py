"""The conformance vectors in tests/vectors (see SOURCES.md there), read as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent.parent / "vectors"


def load(name: str) -> Any:
    """tests/vectors/NAME, parsed."""
    return json.loads((VECTORS / name).read_text())
