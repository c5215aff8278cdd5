"""What Binder (repo2docker) reads: environment.yml at the root, and the README's launch badge.

repo2docker itself needs Docker to build; without it, its Dockerfile was checked by hand
(``repo2docker --no-build --debug``: the conda buildpack, Python 3.11, ``mamba env update --file
environment.yml`` run in the repository after it is copied, so the ``-e .`` line finds the package).
These tests keep what that check relied on true. That the two dependency lists agree is
tests/test_project.py's.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import yaml

ROOT = Path(__file__).resolve().parent.parent


def environment() -> dict[str, object]:
    loaded = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_environment_has_the_proxy_and_installs_the_package() -> None:
    dependencies = environment()["dependencies"]
    assert isinstance(dependencies, list)
    assert "python=3.11" in dependencies
    assert "jupyter-server-proxy>=4.4" in dependencies  # the first that streams SSE
    pip = [d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d]
    # The package itself, without pulling its dependencies from PyPI (conda installs them), then
    # the few PyPI-only ones (the redis extra), named as pip names them.
    assert len(pip) == 1 and pip[0][:2] == ["--no-deps", "-e ."], pip
    # With a binder/ or .binder/ folder repo2docker would read only that folder, not the root.
    for folder in ("binder", ".binder"):
        assert not (ROOT / folder).exists(), folder


def test_readme_badge_opens_the_start_notebook() -> None:
    readme = (ROOT / "README.md").read_text()
    badge = re.search(
        r"\(https://mybinder\.org/v2/gh/[^/]+/[^/]+/HEAD\?labpath=([^)\s]+)\)", readme
    )
    assert badge, "the README has a Binder badge"
    assert unquote(badge.group(1)) == "notebooks/00_start_here.ipynb"
    assert (ROOT / "notebooks/00_start_here.ipynb").is_file()
