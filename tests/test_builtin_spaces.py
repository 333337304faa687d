"""Built-in spaces by name (issue 27): `nasflow search dlsr` (and validate, cost, draw, train
of `dlsr/dlsr-s`) finds the packaged space file from any folder when no such path exists; a
path that exists wins; an unknown name is one line listing the names; `nasflow spaces`
lists them. (tests/test_cli_conventions.py searches `dlsr` and trains `dlsr/dlsr-s` by
name from an empty folder; tests/test_wheel.py runs the main job by name from a wheel.)"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasflow.errors import SpaceError
from nasflow.space.builtin import builtin_space, builtin_spaces, describe_builtin
from nasflow.space.load import resolve_space_path

# the installed package's folder: the checkout's spaces/ in an editable install, site-packages
# from a wheel (.ci/run runs these tests against one)
SPACES = Path(importlib.import_module("nasflow.spaces").__file__).resolve().parent


def test_the_shipped_spaces_have_names() -> None:
    names = builtin_spaces()
    assert names["dlsr"].resolve() == (SPACES / "dlsr" / "space.yaml").resolve()
    assert names["dlsr/space-width"].resolve() == (SPACES / "dlsr" / "space-width.yaml").resolve()
    assert names["dlsr/dlsr-s"].resolve() == (SPACES / "dlsr" / "dlsr-s.yaml").resolve()
    assert names["darts"].resolve() == (SPACES / "darts" / "space.yaml").resolve()
    assert names["mobilenetv2"].resolve() == (SPACES / "mobilenetv2" / "space.yaml").resolve()
    # every shipped yaml has exactly one name
    shipped = {p.resolve() for p in SPACES.glob("*/*.yaml") if not p.name.startswith(("_", "."))}
    assert {p.resolve() for p in names.values()} == shipped


@pytest.mark.parametrize("spelling", ["dlsr/dlsr-s", "dlsr/dlsr-s.yaml", "/dlsr/dlsr-s/"])
def test_spellings_of_a_name(spelling: str) -> None:
    assert builtin_space(spelling) == builtin_spaces()["dlsr/dlsr-s"]
    assert builtin_space("dlsr/space") == builtin_spaces()["dlsr"]
    assert builtin_space("nope") is None


def test_a_path_that_exists_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_space_path("dlsr") == builtin_spaces()["dlsr"]  # no such path here: the name
    (tmp_path / "dlsr").mkdir()
    (tmp_path / "dlsr" / "space.yaml").write_text("name: mine\n")
    assert resolve_space_path("dlsr") == Path("dlsr") / "space.yaml"  # the user's own folder


def test_an_unknown_name_lists_the_built_in_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError) as err:
        resolve_space_path("dlsrr")
    assert "'dlsrr' does not exist" in str(err.value)
    for name in ("dlsr", "dlsr/space-width", "darts", "mobilenetv2", "nasflow spaces"):
        assert name in str(err.value)


def test_every_built_in_space_has_a_description() -> None:
    found = describe_builtin()
    assert [s.name for s in found] == list(builtin_spaces())
    assert all(s.description for s in found), [s.name for s in found if not s.description]


def _nasflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nasflow.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


def test_commands_take_names_from_an_empty_folder(tmp_path: Path) -> None:
    listed = _nasflow(tmp_path, "spaces", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"dlsr", "dlsr/dlsr-s", "darts", "mobilenetv2"} <= set(json.loads(listed.stdout))
    done = _nasflow(tmp_path, "validate", "dlsr/space-width")
    assert done.returncode == 0 and "search space" in done.stdout and "value decision" in done.stdout, done.stderr
    cost = _nasflow(tmp_path, "cost", "dlsr/dlsr-s", "--json")
    assert cost.returncode == 0, cost.stderr
    assert json.loads(cost.stdout)["params"] == 56268  # DLSR-S, as the README's table says
    bad = _nasflow(tmp_path, "validate", "dlsrr")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "dlsr/space-width" in bad.stderr and "Traceback" not in bad.stderr
