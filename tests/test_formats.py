"""File format versions: what nasflow writes carries `format`, what a newer nasflow wrote is
refused with one clear error, and older formats are migrated step by step on load.
(tests/test_format0.py runs directories written before versions existed.)"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from synthetic import PlantedTask, fast_config, planted_space
from test_train import fast, planted_arch

from nasflow.errors import CheckpointError
from nasflow.runs import formats
from nasflow.runs.checkpoint import load_checkpoint, save_checkpoint
from nasflow.runs.formats import FORMAT, migrate, migration
from nasflow.runs.modeldir import load_model, model_format, read_meta, save_model
from nasflow.search.loop import run_search
from nasflow.search.run_dir import RunDir
from nasflow.train.loop import run_train
from nasflow.train.run_dir import TrainRunDir


def _meta_of(path) -> dict:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["nasflow"])


def test_what_nasflow_writes_carries_the_format(tmp_path):
    run_search(fast_config(steps=6, warmup=2, snapshot_steps=[4]), tmp_path / "s", space=planted_space(),
               task=PlantedTask())
    search = RunDir(tmp_path / "s")
    assert json.loads(search.config_path.read_text())["format"] == FORMAT
    for path in (search.checkpoint_path, search.snapshot_path(4)):
        assert ["format", FORMAT] in _meta_of(path)["__items__"]  # in the checkpoint's state
        assert "format" not in load_checkpoint(path)[1]  # read back as the writer gave it
    result = run_train(fast(steps=4, validate_every=2), tmp_path / "t", arch=planted_arch(), task=PlantedTask())
    assert json.loads(TrainRunDir(tmp_path / "t").config_path.read_text())["format"] == FORMAT
    assert model_format(result.model_dir) == FORMAT  # in the weights file's header
    assert "format" not in json.loads((result.model_dir / "meta.json").read_text())  # the writer's meta only
    assert read_meta(result.model_dir)["steps"] == 4


def test_a_newer_format_is_refused_clearly(tmp_path):
    newer = FORMAT + 1
    run_search(fast_config(steps=4, warmup=2), tmp_path / "s", space=planted_space(), task=PlantedTask())
    run = RunDir(tmp_path / "s")
    data = json.loads(run.config_path.read_text())
    run.config_path.write_text(json.dumps({**data, "format": newer}))
    with pytest.raises(CheckpointError, match=rf"config.json' was written by a newer nasflow \(format {newer}; "
                                              rf"this one reads formats 0 to {FORMAT}\); upgrade nasflow"):
        run.config()
    save_file({"x": torch.ones(2)}, str(tmp_path / "c.safetensors"),
              metadata={"nasflow": json.dumps({"__items__": [["format", newer], ["step", 1]]})})
    with pytest.raises(CheckpointError, match=rf"c.safetensors' was written by a newer nasflow \(format {newer}"):
        load_checkpoint(tmp_path / "c.safetensors")
    state = load_model_state()
    model = save_model(tmp_path / "m", planted_arch(), state, {"note": "x"})
    save_file(state, str(model / "weights.safetensors"), metadata={"nasflow_format": str(newer)})
    for read in (read_meta, load_model):
        with pytest.raises(CheckpointError, match=rf"weights.safetensors' was written by a newer nasflow \(format {newer}"):
            read(model)
    save_file(state, str(model / "weights.safetensors"), metadata={"nasflow_format": "one"})
    with pytest.raises(CheckpointError, match=r"has format 'one', not a format number"):
        read_meta(model)


def load_model_state() -> dict[str, torch.Tensor]:
    from nasflow.compile.supernet import compile_graph
    from nasflow.space.graph import build_graph
    return compile_graph(build_graph(planted_arch())).state_dict()


def test_migrations_run_in_order_from_the_file_format():
    steps = {"thing": {0: lambda d: {**d, "seen": d.get("seen", "") + "0"},
                       2: lambda d: {"seen": d.get("seen", "") + "2", "renamed": d["old"]}}}
    assert migrate("thing", 0, {"old": 1}, to=3, migrations=steps) == {"seen": "02", "renamed": 1}
    assert migrate("thing", 1, {"old": 1}, to=3, migrations=steps) == {"seen": "2", "renamed": 1}
    assert migrate("thing", 3, {"old": 1}, to=3, migrations=steps) == {"old": 1}
    assert migrate("other", 0, {"old": 1}, to=3, migrations=steps) == {"old": 1}


def test_registered_migrations_reach_every_kind_of_file(tmp_path, monkeypatch):
    """With a migration registered from format 0, the loaders apply it to format-0 files
    (written without `format`, as older nasflow did) and not to current ones."""
    monkeypatch.setattr(formats, "MIGRATIONS", {})
    migration("checkpoint", 0)(lambda ts: ({**ts[0], "added": torch.zeros(1)}, {**ts[1], "migrated": True}))
    migration("model meta", 0)(lambda meta: {**meta, "task": "planted-test"})
    migration("model weights", 0)(lambda state: {k.replace("old.", ""): v for k, v in state.items()})
    migration("train config", 0)(lambda data: {**data, "steps": data["steps"] * 2})
    with pytest.raises(ValueError, match="already registered"):
        migration("checkpoint", 0)(lambda ts: ts)

    save_checkpoint(tmp_path / "new.safetensors", {"x": torch.ones(1)}, {"step": 1})
    assert load_checkpoint(tmp_path / "new.safetensors")[1] == {"step": 1}
    save_file({"x": torch.ones(1)}, str(tmp_path / "old.safetensors"),
              metadata={"nasflow": json.dumps({"__items__": [["step", 1]]})})
    tensors, state = load_checkpoint(tmp_path / "old.safetensors")
    assert state == {"step": 1, "migrated": True} and set(tensors) == {"x", "added"}

    state = load_model_state()
    model = save_model(tmp_path / "m", planted_arch(), state, {"note": "x"})
    assert load_model(model)[2] == {"note": "x"}  # current format: nothing migrated
    save_file(  # as format 0 wrote it: no format in the header
        {f"old.{k}": v.contiguous() for k, v in state.items()}, str(model / "weights.safetensors"))
    loaded, _, meta = load_model(model)
    assert meta == {"note": "x", "task": "planted-test"}
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())

    run_train(fast(steps=3), tmp_path / "t", arch=planted_arch(), task=PlantedTask())
    run = TrainRunDir(tmp_path / "t")
    assert run.config().steps == 3
    data = json.loads(run.config_path.read_text())
    del data["format"]
    run.config_path.write_text(json.dumps(data))
    assert run.config().steps == 6
