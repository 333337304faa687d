"""Messages that say what happened (issue 15): --out into a folder of other files, and
derive --size 0x0, each refused naming the flag."""
from __future__ import annotations

import pytest
from synthetic import PlantedTask, fast_config, planted_space
from typer.testing import CliRunner

from nasflow.cli.main import app
from nasflow.errors import RunError
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir

runner = CliRunner()


def test_out_into_a_folder_of_other_files_is_refused(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.png").write_bytes(b"not yours to mix a run into")
    with pytest.raises(RunError, match="--out .*photos.* folder of other files, not a run"):
        run_search(fast_config(steps=2, warmup=1), other, space=planted_space(), task=PlantedTask())
    assert sorted(p.name for p in other.iterdir()) == ["cat.png"]
    RunDir.check_free(tmp_path / "new")  # a new folder and an empty one are fine
    (tmp_path / "empty").mkdir()
    RunDir.check_free(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file"):
        RunDir.check_free(tmp_path / "file")


def test_derive_refuses_an_empty_size_by_its_flag(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text(planted_space().to_yaml())
    result = runner.invoke(app, ["derive", str(space), "--size", "0x0", "-o", str(tmp_path / "d")])
    assert result.exit_code != 0
    assert str(result.exception).startswith("--size") and "0x0" in str(result.exception)
    assert not (tmp_path / "d").exists()
