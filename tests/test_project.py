"""The project around the package: the README's commands, CI, the two dependency lists, exports."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import transport_demo

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the Quick start has a bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands_that_exist() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    lab, test = commands
    assert lab == "bash scripts/lab.sh" and (ROOT / "scripts/lab.sh").is_file()
    assert test == "bash scripts/test.sh" and (ROOT / "scripts/test.sh").is_file()
    assert "jupyter lab" in (ROOT / "scripts/lab.sh").read_text()
    assert "pytest" in (ROOT / "scripts/test.sh").read_text()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = quick_start_commands()[1]
    ci = (ROOT / ".ci/run").read_text()
    commands = [
        line.strip()
        for line in ci.splitlines()
        if line.strip()
        and not line.lstrip().startswith("#")
        and not line.startswith(("set ", "cd "))
    ]
    assert commands == [test_command]


def _names(requirements: list[str]) -> dict[str, str]:
    out = {}
    for requirement in requirements:
        match = re.match(r"([A-Za-z0-9_.\-]+)(\[.*\])?\s*(.*)", requirement)
        assert match, requirement
        out[match.group(1).lower().replace("_", "-")] = match.group(3).replace(" ", "")
    return out


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += [r for r in extra if not r.startswith("transport-demo")]
    listed = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in listed if isinstance(d, str) and not d.startswith(("python=", "pip"))]
    # pip's list (installed with --no-deps): the package itself, and what conda-forge names
    # differently; a requirement's own dependencies are listed only for those
    from_pip = next(d for d in listed if isinstance(d, dict))["pip"]
    conda += [d for d in from_pip if not d.startswith(("-", "async-timeout"))]
    assert _names(conda) == _names(wanted)


def test_constraints_pin_every_requirement_within_its_range() -> None:
    """constraints/test.txt (README, "pinned versions") pins, with ==, each requirement of
    pyproject.toml at a version its open range admits, mypy and ruff included; scripts/setup.sh
    installs with it. A requirement added without recompiling the file fails here instead of
    installing whatever is newest on the day."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted += [Requirement(r) for r in extra if not r.startswith("transport-demo")]
    pinned: dict[str, list[str]] = {}
    for line in (ROOT / "constraints/test.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pin = Requirement(line)
            (spec,) = pin.specifier
            assert spec.operator == "==", line
            pinned.setdefault(canonicalize_name(pin.name), []).append(spec.version)
    for requirement in wanted:
        versions = pinned.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in constraints/test.txt: recompile it"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    assert {"mypy", "ruff"} <= pinned.keys()
    assert "-c constraints/test.txt" in (ROOT / "scripts/setup.sh").read_text()


def test_client_page_is_one_file() -> None:
    top, packaged = ROOT / "client.html", ROOT / "transport_demo/static/client.html"
    assert packaged.is_file()
    assert top.read_bytes() == packaged.read_bytes()


def test_public_api_is_pinned() -> None:
    assert transport_demo.__all__ == sorted(transport_demo.__all__)
    assert set(transport_demo.__all__) == {
        "Classroom",
        "Hub",
        "InvalidText",
        "MessageTooLarge",
        "PortInUseError",
        "QueueFull",
        "RateLimited",
        "RunningServer",
        "ServerShuttingDown",
        "Settings",
        "TooManyConnections",
        "TooManyConnectionsFromAddress",
        "Transport",
        "TransportDemoError",
        "UnknownConnection",
        "__version__",
        "create_app",
        "start_classroom",
        "start_server",
        "stop_all",
    }
    for name in transport_demo.__all__:
        assert hasattr(transport_demo, name)
    assert transport_demo.__version__ == importlib.metadata.version("transport-demo")


PUBLIC_MODULES = [
    "transport_demo.server.admission",
    "transport_demo.server.backend",
    "transport_demo.classroom.room",
    "transport_demo.clients",
    "transport_demo.clients.base",
    "transport_demo.server.connection",
    "transport_demo.server.delivery",
    "transport_demo.server.errors",
    "transport_demo.server.expiry_wheel",
    "transport_demo.server.held_polls",
    "transport_demo.server.hot_paths",
    "transport_demo.server.hub",
    "transport_demo.server.registry",
    "transport_demo.lab.local_redis",
    "transport_demo.server.plain_asgi",
    "transport_demo.server.protocol",
    "transport_demo.server.redis_hub",
    "transport_demo.server.redis_scripts",
    "transport_demo.server.redis_store",
    "transport_demo.server.redis_waiters",
    "transport_demo.server.stream",
    "transport_demo.server.wakeups",
    "transport_demo.server.ws_protocol",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_modules_export_what_they_define(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__  # sorted: ruff's RUF022 checks that
    for item in exported:
        assert hasattr(module, item), item
    defined = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and getattr(value, "__module__", None) == name
        and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert defined <= set(exported), defined - set(exported)


def test_the_clients_do_not_import_the_server() -> None:
    code = (
        "import sys, transport_demo.clients, transport_demo.server.protocol; "
        "print(sorted({'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_lab_command_sets_up_and_reaches_jupyterlab() -> None:
    """The README's first command, short of serving: set up, register the kernel, run jupyter lab
    (``--version`` makes it print and exit instead of serving)."""
    import subprocess

    result = subprocess.run(
        ["bash", "scripts/lab.sh", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"4\.\d+\.\d+\s*", result.stdout.splitlines()[-1] + "\n")
