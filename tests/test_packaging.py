"""The distribution as a new user gets it: built, installed into a fresh virtualenv, run.

`python -m build` makes an sdist and, from it, a wheel; the wheel holds one import package,
``breachflow``, with its templates, runbooks, rules and examples; installed (not editable)
into a new venv, `breach demo` runs from an empty directory. Where Debian's HarfBuzz-subset
library is on the machine (Chromium, which the tests need, brings it), it is hidden from
the demo in a mount namespace, as on a new machine: letters must not depend on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HARFBUZZ_SUBSET = Path("/usr/lib/x86_64-linux-gnu/libharfbuzz-subset.so.0")
SOURCE_FOLDERS = ("api", "cli", "flows", "models", "notifiers", "rendering", "rules")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and wheel `python -m build` makes from a copy of the tracked files."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        target = source / name.decode()
        if (REPO / name.decode()).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name.decode(), target)
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # what `pip install .` would show a user: no setuptools warning walls
    assert "BuildBackendWarning" not in built.stdout + built.stderr
    (wheel,) = out.glob("breachflow-*.whl")
    (sdist,) = out.glob("breachflow-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_the_wheel_is_one_package_with_its_data(dist: dict[str, Path]) -> None:
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"breachflow", next(t for t in top if t.endswith(".dist-info"))}
    shipped = set(names)
    for data in (
        "breachflow/templates/notice/letter.zh-CN.html.j2",
        "breachflow/templates/pages/pages.css",
        "breachflow/runbooks/breach-response.md",
        "breachflow/examples/notice.yaml",
        "breachflow/examples/policies/operator-a.yaml",
        "breachflow/rules/eu-gdpr.yaml",
        "breachflow/models/migrations/script.py.mako",
        "breachflow/py.typed",
    ):
        assert data in shipped, data
    assert not any(name.startswith(("breachflow/tests/", "breachflow/bench/")) for name in names)


def test_every_package_folder_is_in_the_wheel(dist: dict[str, Path]) -> None:
    """A new sub-package left out of pyproject's list would vanish from the install."""
    folders = {
        "breachflow." + str(init.parent.relative_to(REPO)).replace("/", ".")
        for part in SOURCE_FOLDERS
        for init in (REPO / part).rglob("__init__.py")
    }
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    assert folders <= listed
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    for package in folders:
        assert package.replace(".", "/") + "/__init__.py" in names, package


def test_every_template_runbook_and_rule_file_ships(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    for folder in ("templates", "runbooks", "examples", "rules"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                assert f"breachflow/{path.relative_to(REPO)}" in names, path


def _hidden_harfbuzz_subset(command: list[str]) -> list[str]:
    """``command`` in a mount namespace where HarfBuzz-subset is /dev/null, if it is here."""
    if not HARFBUZZ_SUBSET.exists():
        return command
    assert os.geteuid() == 0 and shutil.which("unshare"), (
        "HarfBuzz-subset is installed: hiding it needs root and unshare (util-linux)"
    )
    script = f'mount --bind /dev/null {HARFBUZZ_SUBSET} && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh", *command]


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_from_an_empty_directory(
    dist: dict[str, Path], tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", dist["wheel"]],
        check=True,
        capture_output=True,
        timeout=900,
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
    }
    demo = subprocess.run(
        _hidden_harfbuzz_subset([str(env_dir / "bin" / "breach"), "demo", "--people", "50"]),
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "WARNING" not in output and "Warning" not in output, output
    assert "People affected:   50" in output
    letters = list((empty / ".breach" / "outbox" / "letter").rglob("*.pdf"))
    assert letters, "the demo prints letters"
    assert all(pdf.read_bytes().startswith(b"%PDF") for pdf in letters)
    # what WeasyPrint had to say went to the library log, not the terminal
    assert "fontTools" in (empty / ".breach" / "logs" / "libraries.log").read_text()
