"""How long each notebook takes someone who meets the material for the first time, by one stated
formula (issue 22). Run: .venv/bin/python scripts/notebook_times.py

The formula, applied cell by cell:

* **markdown**: 150 words a minute. A word is a run of characters that starts with a letter or a
  digit; link targets ``](…)``, pictures and HTML tags are not words (a code span such as
  ``Sec-WebSocket-Key`` is one word, a table's cells are words, its ``|`` and ``---`` are not);
* **code cells**: half a minute each (read it, run it, look at what it shows);
* **predictions**: a minute and a half each; a prediction is a bold ``**Predict`` in a markdown
  cell (the lesson-shape tests hold that each is answered out of sight);
* **exercises** are counted apart: every cell from a heading ``## Exercise…``, ``## N. Exercises``
  or ``### Exercise…`` up to the next level-2 heading that is not an exercise, by the same formula,
  plus ``EXERCISE_WORK`` minutes to write and check each exercise (a heading ``Exercise N: …`` or
  ``Exercise: …``; ``Exercises`` only introduces them).

A notebook's class time is everything else. Its sections are its level-2 headings: a numbered
one (``## 3. On the wire``) is ``§3``; the cells before the first heading and under unnumbered
ones (``## Recap``, ``## Teardown``, 00's ``## The suite``) are its ``frame``, read whenever the
notebook is taken at all. The figures are the formula's, not a stopwatch's: they are what each
notebook states (rounded to 5 minutes), what 00's table lists, and what docs/teaching.md's paths
add up, and tests/test_notebook_times.py holds all three to them.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

WORDS_PER_MINUTE = 150
CODE_CELL = 0.5
PREDICTION = 1.5
EXERCISE_WORK = 6.0
"""Minutes to write and check one exercise, on top of reading it: an allowance, not a measure."""

FRAME = "frame"
_HEADING = re.compile(r"^(##|###)\s+(.+?)\s*$", re.MULTILINE)
_NUMBERED = re.compile(r"^(\d+)\.\s")
_EXERCISE = re.compile(r"^(\d+\.\s+)?Exercises?\b")
_ONE_EXERCISE = re.compile(r"^Exercise\b")


def words(markdown: str) -> int:
    """The words of a markdown cell, as the formula counts them."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", markdown)  # pictures
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"<[^>]+>", " ", text)  # HTML tags (<details>, <summary>, <b>)
    return len(re.findall(r"[A-Za-z0-9]\S*", text))


def predictions(markdown: str) -> int:
    return markdown.count("**Predict")


@dataclass
class Timing:
    """One notebook by the formula: class minutes by section, exercises apart."""

    name: str
    sections: dict[str, float] = field(default_factory=dict)
    exercise_reading: float = 0.0
    exercises: int = 0
    words: int = 0
    code_cells: int = 0
    predictions: int = 0

    @property
    def minutes(self) -> float:
        """Class time: every section and the frame, no exercises."""
        return sum(self.sections.values())

    @property
    def exercise_minutes(self) -> float:
        return self.exercise_reading + EXERCISE_WORK * self.exercises

    def of(self, numbers: list[int]) -> float:
        """The frame and the numbered sections given: what a lesson plan's row takes."""
        missing = [n for n in numbers if f"§{n}" not in self.sections]
        if missing:
            raise KeyError(f"{self.name} has no section {missing}")
        return self.sections[FRAME] + sum(self.sections[f"§{n}"] for n in numbers)


def _chunks(markdown: str) -> list[tuple[tuple[int, str] | None, str]]:
    """A markdown cell cut at its level-2 and -3 headings: ((level, heading) or None, the text)."""
    cuts = [m.start() for m in _HEADING.finditer(markdown)]
    starts = [0, *cuts] if not cuts or cuts[0] else cuts
    pieces = [markdown[a:b] for a, b in zip(starts, [*starts[1:], len(markdown)], strict=True)]
    chunks = []
    for piece in pieces:
        heading = _HEADING.match(piece)
        chunks.append(((len(heading.group(1)), heading.group(2)) if heading else None, piece))
    return chunks


def time_notebook(path: Path) -> Timing:
    """Time one notebook by the formula."""
    notebook = nbformat.read(path, as_version=4)
    timing = Timing(path.stem, {FRAME: 0.0})
    section, in_exercises = FRAME, False

    def add(minutes: float) -> None:
        if in_exercises:
            timing.exercise_reading += minutes
        else:
            timing.sections[section] += minutes

    for cell in notebook.cells:
        if cell.cell_type == "code":
            timing.code_cells += 1
            add(CODE_CELL)
        if cell.cell_type != "markdown":
            continue
        for found, text in _chunks(cell.source):
            level, heading = found or (0, "")
            if level and _EXERCISE.match(heading):
                in_exercises = True
                timing.exercises += bool(_ONE_EXERCISE.match(heading))
            elif level == 2:
                in_exercises = False
                number = _NUMBERED.match(heading)
                section = f"§{number.group(1)}" if number else FRAME
                timing.sections.setdefault(section, 0.0)
            timing.words += words(text)
            timing.predictions += predictions(text)
            add(words(text) / WORDS_PER_MINUTE + PREDICTION * predictions(text))
    return timing


def all_notebooks() -> dict[str, Timing]:
    """Every notebook of the suite, by name (``03_websocket``)."""
    return {path.stem: time_notebook(path) for path in sorted(NOTEBOOKS.glob("*.ipynb"))}


def rounded(minutes: float) -> int:
    """To the nearest 5 minutes, as the notebooks state their times."""
    return int(5 * round(minutes / 5))


def report(timings: dict[str, Timing]) -> str:
    lines = [
        f"{'notebook':32} {'words':>6} {'cells':>6} {'predict':>8} {'class':>7} "
        f"{'exercises':>10}  sections",
    ]
    for name, t in timings.items():
        exercises = f"{t.exercise_minutes:.1f} ({t.exercises})" if t.exercises else "-"
        parts = " ".join(f"{k} {v:.1f}" for k, v in t.sections.items())
        lines.append(
            f"{name:32} {t.words:6} {t.code_cells:6} {t.predictions:8} {t.minutes:7.1f} "
            f"{exercises:>10}  {parts}"
        )
    total = sum(t.minutes for t in timings.values())
    exercises_total = sum(t.exercise_minutes for t in timings.values())
    lines.append(f"{'all':32} {'':6} {'':6} {'':8} {total:7.1f} {exercises_total:10.1f}")
    return "\n".join(lines)


def main() -> int:
    print(report(all_notebooks()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
