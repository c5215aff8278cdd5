"""Figures measured by the reliability tests, gathered in artifacts/reliability.json.

docs/reliability.md quotes them from a run on this machine; the tests assert the guarantees, the
file only keeps the numbers.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
_lock = threading.Lock()


def record(name: str, **figures: Any) -> None:
    """Add (or replace) one entry in artifacts/reliability.json."""
    with _lock:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / "reliability.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = figures
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
