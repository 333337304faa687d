"""Model directories: round trip, strict loading, one clear error per broken directory."""
from __future__ import annotations

import json

import pytest
import torch
from toy_spaces import python_space

from nasflow.derive.genotype import Genotype, derive_space
from nasflow.errors import CheckpointError, NasflowError
from nasflow.space.graph import build_graph
from nasflow.runs.modeldir import META_FILE, WEIGHTS_FILE, load_model, save_model
from nasflow.space.schema import Space
from nasflow.compile.supernet import compile_graph


@pytest.fixture
def arch() -> Space:
    geno = Genotype({"m1": "sep_conv_3x3"}, {"e3": ["c3", "c1"]})
    return derive_space(python_space(), geno, name="toy-arch")


@pytest.fixture
def saved(tmp_path, arch):
    torch.manual_seed(0)
    model = compile_graph(build_graph(arch))
    save_model(tmp_path / "m", arch, model.state_dict(), {"scale": 2, "note": "test"})
    return tmp_path / "m", model


def test_round_trip_same_outputs(saved, arch):
    path, model = saved
    assert sorted(p.name for p in path.iterdir()) == ["arch.yaml", "meta.json", "weights.safetensors"]
    loaded, space, meta = load_model(path)
    assert space.to_data() == arch.to_data()
    assert meta == {"scale": 2, "note": "test"}
    assert not loaded.training
    x = torch.rand(1, 3, 12, 12) * 255
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_no_temporary_files_left(saved):
    path, _ = saved
    assert not [p for p in path.iterdir() if p.name.startswith(".")]


def test_save_checks_the_weights_first(tmp_path, arch):
    state = compile_graph(build_graph(arch)).state_dict()
    del state["stem.op.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): stem.op.bias"):
        save_model(tmp_path / "m", arch, state)
    assert not (tmp_path / "m" / WEIGHTS_FILE).exists()


def test_meta_must_be_json(tmp_path, arch):
    state = compile_graph(build_graph(arch)).state_dict()
    with pytest.raises(NasflowError, match="JSON"):
        save_model(tmp_path / "m", arch, state, {"bad": object()})


def test_missing_directory_and_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="does not exist.*nasflow import"):
        load_model(tmp_path / "nope")
    path, _ = saved
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match=f"has no {WEIGHTS_FILE}"):
        load_model(path)


def test_missing_meta_is_empty(saved):
    path, _ = saved
    (path / META_FILE).unlink()
    assert load_model(path)[2] == {}


def test_corrupt_weights(saved):
    path, _ = saved
    (path / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_model(path)


def test_weights_of_another_architecture(saved, tmp_path):
    """Weights of a wider model: the error names a key and both shapes."""
    path, _ = saved
    wide = derive_space(python_space().with_params({"C": 16}),
                        Genotype({"m1": "sep_conv_3x3"}, {"e3": ["c3", "c1"]}))
    save_model(tmp_path / "wide", wide, compile_graph(build_graph(wide)).state_dict())
    (path / WEIGHTS_FILE).write_bytes((tmp_path / "wide" / WEIGHTS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match=r"'stem.op.weight' has shape \(16, 3, 3, 3\), the "
                                              r"architecture needs \(8, 3, 3, 3\)"):
        load_model(path)


def test_missing_and_unexpected_keys_listed_briefly(saved):
    from safetensors.torch import load_file, save_file

    path, _ = saved
    state = load_file(str(path / WEIGHTS_FILE))
    renamed = {("x" + k if k.startswith("c") else k): v for k, v in state.items()}
    save_file(renamed, str(path / WEIGHTS_FILE))
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    msg = str(info.value)
    assert "missing key(s)" in msg and "unexpected key(s)" in msg and "and " in msg and "more" in msg
    assert len(msg) < 600


def test_bad_meta_json(saved):
    path, _ = saved
    (path / META_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(path)


def test_supernet_with_arch_parameters_round_trips(tmp_path):
    space = python_space()
    model = compile_graph(build_graph(space))
    save_model(tmp_path / "s", space, model.state_dict())
    loaded, _, _ = load_model(tmp_path / "s")
    assert torch.equal(loaded.arch.logits("m1"), model.arch.logits("m1"))
    assert json.loads((tmp_path / "s" / META_FILE).read_text()) == {}
