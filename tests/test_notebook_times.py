"""The times the suite states hold to one formula (issue 22): ``scripts/notebook_times.py`` times
each notebook (150 words a minute, half a minute a code cell, a minute and a half a prediction,
exercises apart with six minutes of work each); each notebook's opening, the table in 00, the table
and both paths in docs/teaching.md must agree with it within five minutes, and add up."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 5  # minutes: the notebooks state times rounded to 5
# What a path leaves out sums every notebook's rounding (eight of them): ten minutes either way.
LEFT_OUT_TOLERANCE = 10

_spec = importlib.util.spec_from_file_location(
    "notebook_times", ROOT / "scripts" / "notebook_times.py"
)
assert _spec and _spec.loader
times = importlib.util.module_from_spec(_spec)
sys.modules["notebook_times"] = times  # dataclasses look their module up
_spec.loader.exec_module(times)

TIMINGS = times.all_notebooks()
SHORT = {name.split("_")[0]: name for name in TIMINGS}  # "03b" -> "03b_websocket_in_practice"
TEACHING = (ROOT / "docs" / "teaching.md").read_text()

# Openings that are being rewritten: what each must say to hold (a strict xfail: remove the entry
# once the opening says it, and the test passes). None today.
AWAITING: dict[str, str] = {}


def cells(name: str) -> list[str]:
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    return [cell.source for cell in notebook.cells]


def suite_table() -> dict[str, tuple[int, int | None]]:
    """00's table: notebook -> (minutes in class, minutes of exercises or None)."""
    rows = re.findall(
        r"^\| (?:\*\*|\[)(\w+?)(?:\*\*|\]\(\S+\)) [^|]*\|[^|]*\| (\d+) min \| (?:(\d+) min|—) \|$",
        cells("00_start_here")[1],
        re.MULTILINE,
    )
    return {name: (int(m), int(e) if e else None) for name, m, e in rows}


def hours(text: str) -> int:
    """'4 h 30 min' or '4 h' as minutes."""
    match = re.fullmatch(r"(\d+) h(?: (\d+) min)?", text.strip())
    assert match, text
    return 60 * int(match.group(1)) + int(match.group(2) or 0)


def test_the_formula_counts_what_it_says() -> None:
    text = "A [link](../docs/glossary.md#seq), `Sec-WebSocket-Key` <b>and</b> ![x](a.svg) | --- |"
    assert times.words(text) == 4  # A, link, the code span, and
    assert times.predictions("**Predict:** one. **Predict, then run.** two; *Predict* is not") == 2
    cut = times._chunks("intro\n## 7. Exercises\ntext\n### Exercise: one\nmore")
    assert [found for found, _ in cut] == [None, (2, "7. Exercises"), (3, "Exercise: one")]
    timing = TIMINGS["03_websocket"]
    assert timing.minutes == pytest.approx(sum(timing.sections.values()))
    assert timing.exercises == 3 and timing.exercise_minutes > 3 * times.EXERCISE_WORK


def test_no_notebook_needs_more_than_50_minutes() -> None:
    for name, timing in TIMINGS.items():
        assert times.rounded(timing.minutes) <= 50, (name, round(timing.minutes, 1))


def test_the_table_in_00_lists_every_notebook() -> None:
    assert list(suite_table()) == list(TIMINGS)


@pytest.mark.parametrize("name", list(TIMINGS))
def test_the_table_in_00_holds_to_the_formula(name: str) -> None:
    minutes, exercises = suite_table()[name]
    timing = TIMINGS[name]
    assert abs(minutes - timing.minutes) <= TOLERANCE, (minutes, round(timing.minutes, 1))
    if timing.exercises:
        assert exercises is not None
        assert abs(exercises - timing.exercise_minutes) <= TOLERANCE, (
            exercises,
            round(timing.exercise_minutes, 1),
        )
    else:
        assert exercises is None


def test_the_table_in_00_adds_up() -> None:
    table = suite_table()
    text = cells("00_start_here")[1]
    duration = r"(\d+ h(?: \d+ min)?)"
    total = re.search(rf"adds up to {duration} \({duration} without 05 and 05b\)", text)
    assert total, "00 states its total"
    assert hours(total.group(1)) == sum(m for m, _ in table.values())
    assert hours(total.group(2)) == sum(m for n, (m, _) in table.items() if not n.startswith("05"))
    exercises = re.search(r"exercises add (\d+) minutes", text)
    assert exercises and int(exercises.group(1)) == sum(e or 0 for _, e in table.values())


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=AWAITING[name]))
        if name in AWAITING
        else name
        for name in TIMINGS
    ],
)
def test_each_notebook_states_its_time(name: str) -> None:
    """The opening's "about N minutes" (and its exercises' minutes) say what 00's table says,
    and both hold to the formula."""
    opening = cells(name)[0]
    stated = re.search(r"about (\d+) minutes", opening)
    assert stated, "the opening states its time"
    minutes, exercises = suite_table()[name]
    assert int(stated.group(1)) == minutes
    assert abs(minutes - TIMINGS[name].minutes) <= TOLERANCE
    if TIMINGS[name].exercises:
        stated_exercises = re.search(r"exercises?\b[^.]*?\((\d+) minutes\)", opening)
        assert stated_exercises, "the opening states its exercises' time"
        assert int(stated_exercises.group(1)) == exercises


def test_teaching_md_lists_the_same_times() -> None:
    rows = re.findall(
        r"^\| (0\d\w?) [^|]*\| (\d+) min \| (?:(\d+) min \((\d)\)|—) \|$", TEACHING, re.MULTILINE
    )
    table = suite_table()
    assert [SHORT[short] for short, *_ in rows] == list(TIMINGS)
    for short, minutes, exercises, count in rows:
        name = SHORT[short]
        assert (int(minutes), int(exercises) if exercises else None) == table[name]
        assert int(count or 0) == TIMINGS[name].exercises
    total = re.search(
        r"^\| \*\*all\*\* \| \*\*([^*]+)\*\* \| \*\*(\d+) min\*\* \|$", TEACHING, re.M
    )
    assert total and hours(total.group(1)) == sum(m for m, _ in table.values())
    assert int(total.group(2)) == sum(e or 0 for _, e in table.values())


def path(title: str) -> str:
    """One path's text in docs/teaching.md, up to the next level-2 heading."""
    text = TEACHING.split(f"## {title}\n", 1)[1]
    return text.split("\n## ", 1)[0]


def clock(text: str) -> int:
    h, m = text.split(":")
    return 60 * int(h) + int(m)


@pytest.mark.parametrize(
    ("title", "length"), [("The 90-minute path", 90), ("The 3-hour path", 180)]
)
def test_each_path_adds_up_by_the_formula(title: str, length: int) -> None:
    """Each row's slot holds to the formula for its sections (and the notebook's frame, the first
    time it appears); the rows follow each other from 0:00 to the end, but for a stated break;
    what the path leaves out is the rest, as stated."""
    text = path(title)
    rows = re.findall(r"^\| (\d:\d\d)–(\d:\d\d) \| \*\*(0\d\w?)\*\* ([^|]+)\|", text, re.MULTILINE)
    assert rows, title
    seen: set[str] = set()
    at, taught = 0, 0.0
    breaks = [int(m) for m in re.findall(r"\*\*Break \((\d+) minutes\)\.\*\*", text)]
    for start, end, short, what in rows:
        if clock(start) != at:
            assert breaks and clock(start) == at + breaks.pop(0), (start, at)
        at = clock(end)
        timing = TIMINGS[SHORT[short]]
        picked = what.split(":", 1)[0]
        if picked.strip() == "complete":
            numbers = [int(key[1:]) for key in timing.sections if key != times.FRAME]
        else:
            numbers = [int(n) for n in re.findall(r"§(\d+)", picked)]
            assert numbers, what
        minutes = timing.of(numbers) - (timing.sections[times.FRAME] if short in seen else 0)
        seen.add(short)
        taught += minutes
        slot = clock(end) - clock(start)
        assert abs(slot - minutes) <= TOLERANCE, (start, short, numbers, round(minutes, 1))
    assert at == length and not breaks
    left = re.search(
        r"\*\*What it leaves out\*\* \(about (\d+) minutes of class material by the formula, "
        r"and all (\d+) minutes of\s+exercises\)",
        text,
    )
    assert left, "the path says what it leaves out"
    everything = sum(t.minutes for t in TIMINGS.values())
    left_out = everything - taught
    assert abs(int(left.group(1)) - left_out) <= LEFT_OUT_TOLERANCE, round(left_out)
    assert int(left.group(2)) == sum(e or 0 for _, e in suite_table().values())
