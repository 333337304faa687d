"""A run interrupted while it is being made leaves a folder the same command takes again."""
from __future__ import annotations

from pathlib import Path

import pytest

from nasflow.search.run_dir import RunDir
from nasflow.space.load import load_space

SPACE = Path(__file__).resolve().parents[1] / "spaces" / "dlsr" / "dlsr-s.yaml"


def test_an_interrupt_after_the_space_is_written_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from synthetic import fast_config

    run = tmp_path / "run"
    run.mkdir()  # made beforehand, as the run lock makes it: create() does not own the folder
    space = load_space(SPACE)

    from nasflow.runs import files

    real = files.write_text_atomic

    def interrupted(path: Path, text: str) -> None:
        real(path, text)  # written and renamed into place; the interrupt lands before create() goes on
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "write_text_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        RunDir.create(run, fast_config(), space)
    assert run.is_dir() and not any(run.iterdir())
    monkeypatch.undo()
    made = RunDir.create(run, fast_config(), space)  # the same command again
    assert made.space_path.is_file() and made.config_path.is_file()
