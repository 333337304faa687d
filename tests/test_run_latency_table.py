"""A search's latency table travels with its run (issue 25, RunDir.latency_table): a resume
from another folder finds it, and a table edited between start and resume does not change the
costs mid-run (the resume says it changed, and ends bit for bit as the uninterrupted run)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from strategy_checks import final_state
from synthetic import PlantedTask, fast_config, planted_space

from nasflow.errors import NasflowWarning, RunError
from nasflow.hardware.profile import profile_space
from nasflow.search.loop import run_search
from nasflow.search.run_dir import LATENCY_SOURCE, LATENCY_TABLE
from nasflow.space.graph import build_graph


@pytest.fixture(scope="module")
def table_text() -> str:
    table = profile_space(build_graph(planted_space()), (8, 8), warmup=0, reps=1)
    data = json.loads(table.model_dump_json())
    for k, option in enumerate(data["nodes"]["m"]["options"].values()):  # fixed, far apart: the costs matter
        option["ms"] = 1.0 + 3.0 * k
    return json.dumps(data, indent=1)


def _config():  # -> SearchConfig; the table's path is relative: as typed in a shell
    return fast_config(steps=6, warmup=2, checkpoint_every=2, log_every=2, gamma=2.0, regularizer="latency",
                       latency_table="tables/t.json")


def _edited(text: str) -> str:
    data = json.loads(text)
    data["nodes"]["m"]["options"]["conv_1x1"]["ms"] = 500.0
    return json.dumps(data)


def _assert_same(a: Path, b: Path) -> None:
    (ta, _), (tb, _) = final_state(a), final_state(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), name


def test_a_resume_elsewhere_reads_the_runs_own_table_even_when_the_original_changed(
        tmp_path: Path, table_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    (start / "tables").mkdir(parents=True)
    elsewhere.mkdir()
    (start / "tables" / "t.json").write_text(table_text)
    monkeypatch.chdir(start)
    run_search(_config(), tmp_path / "ref", space=planted_space(), task=PlantedTask())
    run_search(_config(), tmp_path / "run", space=planted_space(), task=PlantedTask(), stop_at=3)
    copy = tmp_path / "run" / LATENCY_TABLE
    assert copy.read_text() == table_text
    record = json.loads((tmp_path / "run" / LATENCY_SOURCE).read_text())
    assert record == {"path": str(start / "tables" / "t.json"),
                      "sha256": hashlib.sha256(table_text.encode()).hexdigest()}
    # The edited table would change the search (a run started with it ends elsewhere) ...
    (start / "tables" / "t.json").write_text(_edited(table_text))
    run_search(_config(), tmp_path / "other", space=planted_space(), task=PlantedTask())
    with pytest.raises(AssertionError):
        _assert_same(tmp_path / "ref", tmp_path / "other")
    # ... but the resume, from a folder where 'tables/t.json' does not exist, says it changed
    # and goes on with the table the run started with.
    monkeypatch.chdir(elsewhere)
    with pytest.warns(NasflowWarning, match=r"latency table '.*t.json' changed since run '.*run' started; the run's "
                                            r"costs stay those of the table it started with"):
        assert run_search(_config(), tmp_path / "run", task=PlantedTask(), resume=True).finished
    _assert_same(tmp_path / "ref", tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["latency_table"] == "tables/t.json"


def test_a_runs_table_edited_inside_the_run_is_refused(tmp_path: Path, table_text: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "t.json").write_text(table_text)
    monkeypatch.chdir(tmp_path)
    run_search(_config(), tmp_path / "run", space=planted_space(), task=PlantedTask(), stop_at=2)
    (tmp_path / "run" / LATENCY_TABLE).write_text(_edited(table_text))
    with pytest.raises(RunError, match=r"the run's latency table, was changed after the run started .*put the "
                                       r"original back \(from '.*t.json'\), or start a new run"):
        run_search(_config(), tmp_path / "run", task=PlantedTask(), resume=True)
