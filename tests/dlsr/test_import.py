"""Importing the released DLSR checkpoints: names, strictness, one clear error per mistake,
and the `nasflow import` / `nasflow eval` commands. Skipped without ../shared (the weights)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from nasflow.cli.main import app
from nasflow.spaces.dlsr.importer import (
    HERE,
    RELEASED,
    convert,
    import_checkpoint,
    read_checkpoint,
)
from typer.testing import CliRunner

from nasflow.errors import CheckpointError
from nasflow.space.load import load_space
from nasflow.runs.modeldir import load_model

DLSR, DIV, SMALL = list(RELEASED)  # the three released files, in the order of the facts table
PARAMS = {"DLSR": 322_620, "DLSR-DIV": 327_804, "DLSR-S": 56_268}
runner = CliRunner()


@pytest.fixture(scope="module")
def weights(shared_dir: Path) -> Path:
    return shared_dir / "weights" / "dlsr"


def _arch(file_name: str) -> Path:
    return HERE / RELEASED[file_name].arch


@pytest.mark.parametrize("file_name", list(RELEASED))
def test_import_every_released_checkpoint(weights, tmp_path, file_name):
    path = import_checkpoint(weights / file_name, _arch(file_name), tmp_path / "m")
    model, space, meta = load_model(path)
    known = RELEASED[file_name]
    assert sum(p.numel() for p in model.parameters()) == PARAMS[known.paper_model]
    assert meta["paper_model"] == known.paper_model and meta["scale"] == 2
    assert meta["channels"] == space.params["channels"] and meta["source"]["file"] == file_name
    assert len(meta["source"]["sha256"]) == 64
    # every released tensor lands unchanged under its nasflow name
    released, _ = read_checkpoint(weights / file_name)
    state = model.state_dict()
    assert torch.equal(state["stem.op.weight"], released["fea_conv.weight"])
    assert torch.equal(state["cell6.esa.op.conv3_.bias"], released["B6.esa.conv3_.bias"])
    assert torch.equal(state["cell4_in.op.weight"], released["c4.0.weight"])
    assert torch.equal(state["up_conv.op.bias"], released["upsampler.0.bias"])
    assert sum(v.numel() for v in state.values()) == sum(v.numel() for v in released.values())


def test_mrb_names(weights):
    """A released Sequential around one conv (op.0) maps to a bare conv; sep convs keep indices."""
    state, _ = read_checkpoint(weights / DLSR)
    out = convert(state, load_space(_arch(DLSR)))
    assert torch.equal(out["cell1.m1.op.weight"], state["B1.c1_r.op.0.weight"])
    assert torch.equal(out["cell3.m2.op.4.weight"], state["B3.c2_r.op.4.weight"])


def test_small_checkpoint_into_wide_architecture(weights):
    state, _ = read_checkpoint(weights / SMALL)
    with pytest.raises(CheckpointError, match=r"shapes do not fit.*channels 18.*fits .*dlsr-s\.yaml"):
        convert(state, load_space(_arch(DLSR)))


def test_other_ops_name_the_fitting_architecture(weights):
    state, _ = read_checkpoint(weights / DIV)
    with pytest.raises(CheckpointError, match=r"MRB ops sep_conv_3x3, sep_conv_5x5, sep_conv_5x5.*"
                                              r"fits .*dlsr-div\.yaml"):
        convert(state, load_space(_arch(DLSR)))


def test_missing_and_extra_tensors(weights, tmp_path):
    data = torch.load(weights / SMALL, map_location="cpu", weights_only=True)
    del data["state_dict"]["B2.c1_d.bias"]
    torch.save(data, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"1 of its tensor\(s\) not in the checkpoint: cell2\.d1\.op\.bias"):
        import_checkpoint(tmp_path / "missing.pt", _arch(SMALL), tmp_path / "m")
    data = torch.load(weights / SMALL, map_location="cpu", weights_only=True)
    data["state_dict"]["B7.c1_d.bias"] = torch.zeros(9)
    data["state_dict"]["head.weight"] = torch.zeros(1)
    torch.save(data, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"2 tensor\(s\) with no place in it: B7\.c1_d\.bias "
                                              r"\(-> cell7\.d1\.op\.bias\), head\.weight"):
        import_checkpoint(tmp_path / "extra.pt", _arch(SMALL), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_unreadable_files(weights, tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((weights / SMALL).read_bytes()[:100_000])
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    for path in (truncated, text):
        with pytest.raises(CheckpointError, match="cannot be read as a torch checkpoint.*truncated") as info:
            read_checkpoint(path)
        assert "weights_only" not in str(info.value)  # torch's advice to run the file's code
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "absent.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        read_checkpoint(tmp_path / "list.pt")


def test_search_space_is_not_an_import_target(weights):
    state, _ = read_checkpoint(weights / DLSR)
    with pytest.raises(CheckpointError, match="search space.*derived architecture"):
        convert(state, load_space(HERE / "space.yaml"))


def test_released_file_into_a_differently_wired_architecture(weights, tmp_path):
    """Same ops and shapes, other cell inputs: the shapes cannot tell, the release table can."""
    data = load_space(_arch(DLSR)).to_data()
    data["nodes"]["cell3_in"]["dense"] = ["cell2", "cell1"]
    data["name"] = "rewired"
    arch = tmp_path / "rewired.yaml"
    arch.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="released DLSR.*wired differently.*dlsr\\.yaml"):
        import_checkpoint(weights / DLSR, arch, tmp_path / "m")


def test_cli_import_and_eval(weights, tmp_path):
    out = tmp_path / "dlsr-s"
    result = runner.invoke(app, ["import", str(weights / SMALL), "-o", str(out)])  # arch from the release table
    assert result.exit_code == 0, result.output
    assert "56,268 params" in result.output
    result = runner.invoke(app, ["eval", str(out), "--json"])  # default bench: the shipped Set5
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["params"] == 56_268 and report["paper_model"] == "DLSR-S"
    (s,) = report["sets"]
    assert s["set"] == "Set5" and len(s["images"]) == 5
    assert abs(s["psnr"] - 37.71) < 0.02 and 33.66 <= s["bicubic_psnr"] <= 33.69
    result = runner.invoke(app, ["eval", str(out), "--scale", "4"])
    assert result.exit_code != 0 and "upscales x2" in str(result.exception)


def test_cli_import_wrong_arch_is_one_line(weights, tmp_path, capsys):
    from nasflow.cli.app import run

    with pytest.raises(SystemExit) as info:
        run(["import", str(weights / SMALL), "--arch", str(_arch(DLSR)), "-o", str(tmp_path / "m")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "does not fit architecture 'dlsr'" in err and "Traceback" not in err
