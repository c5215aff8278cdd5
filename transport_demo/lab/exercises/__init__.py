"""Exercise checks for the notebooks: each ``check_…`` prints pass or fail and returns a bool.

Checks never raise on a wrong answer: a student sees what is wrong and tries again. Solutions
live in ``notebooks/solutions/`` (``%load solutions/<name>.py`` in a cell).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def report(name: str, problems: list[str]) -> bool:
    """Print the verdict of a check; True when there are no problems."""
    if problems:
        print(f"✗ {name}: not yet.")
        for problem in problems[:5]:
            print("  -", problem)
        return False
    print(f"✓ {name}: pass!")
    return True


def attempt(fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """Call the student's function; an exception becomes a problem to show, not a crash."""
    try:
        return fn(*args), None
    except Exception as exc:
        return None, f"calling it with {args!r} raised {type(exc).__name__}: {exc}"
