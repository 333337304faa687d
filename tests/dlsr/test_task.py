"""The SR task adapter on the shipped T91 images: deterministic, disjoint, rank-sharded and
resumable batch streams, the loss, evaluation, options and presets, and a tiny real search
of the DLSR space that derives a valid architecture."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasflow.search.config import SearchConfig
from nasflow.search.derive_run import derive_run
from nasflow.errors import NasflowError
from nasflow.space.load import load_space
from nasflow.tasks.presets import apply_preset, preset_section
from nasflow.search.loop import run_search
from nasflow.spaces.dlsr import task as task_module
from nasflow.spaces.dlsr.data import list_images
from nasflow.spaces.dlsr.evaluate import default_bench
from nasflow.spaces.dlsr.metrics import psnr
from nasflow.spaces.dlsr.task import SRTask, default_data
from nasflow.tasks.contract import make_task
from nasflow.strategies import get_strategy

SPACE = Path(__file__).resolve().parents[2] / "spaces" / "dlsr" / "space.yaml"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six of the shipped T91 images (the smallest is 78 x 78)."""
    folder = tmp_path_factory.mktemp("t91")
    for name in ("000t20.png", "000t12.png", "000t9.png", "000t21.png", "000t24.png", "000t23.png"):
        shutil.copy(default_data() / name, folder / name)
    return folder


@pytest.fixture
def task(images: Path, tmp_path: Path) -> SRTask:
    return SRTask(str(images), scale=2, patch=16, workers=0, cache=str(tmp_path / "cache"))


def take(it, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [next(it) for _ in range(n)]


def same(a: list, b: list) -> bool:
    return all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True))


# --- batches ----------------------------------------------------------------------------------
def test_batches_are_aligned_lr_hr_pairs_in_0_255(task: SRTask) -> None:
    lr, hr = next(task.batches("train", 4, seed=0))
    assert lr.shape == (4, 3, 8, 8) and hr.shape == (4, 3, 16, 16)
    assert lr.dtype == hr.dtype == torch.float32
    assert 0 <= float(hr.min()) and float(hr.max()) <= 255 and float(hr.max()) > 1
    # The LR patch is the HR patch's neighbourhood downscaled: a 2x2 mean of HR tracks it.
    pooled = F.avg_pool2d(hr, 2)
    assert float((pooled - lr).abs().mean()) < 12


def test_batches_are_a_function_of_the_seed(images: Path, tmp_path: Path) -> None:
    one = SRTask(str(images), scale=2, patch=16, workers=0, cache=str(tmp_path))
    two = SRTask(str(images), scale=2, patch=16, workers=0, cache=str(tmp_path))
    assert same(take(one.batches("train", 4, 0), 3), take(two.batches("train", 4, 0), 3))
    assert not same(take(one.batches("train", 4, 0), 1), take(one.batches("train", 4, 1), 1))
    # train and valid draw from different images and streams
    assert not same(take(one.batches("train", 4, 0), 1), take(one.batches("valid", 4, 0), 1))


def test_workers_give_the_same_batches(images: Path, tmp_path: Path) -> None:
    inline = SRTask(str(images), scale=2, patch=16, workers=0, cache=str(tmp_path))
    forked = SRTask(str(images), scale=2, patch=16, workers=2, cache=str(tmp_path))
    assert same(take(inline.batches("train", 4, 3), 2), take(forked.batches("train", 4, 3), 2))


def test_train_and_valid_are_disjoint_and_deterministic(task: SRTask, images: Path) -> None:
    split = task.split_paths()
    assert set(split["train"]).isdisjoint(split["valid"])
    assert sorted(split["train"] + split["valid"]) == list_images(images)
    assert len(split["valid"]) == 1  # 0.13 of 6 images, at least one
    assert SRTask(str(images), scale=2).split_paths() == split
    shipped = SRTask(scale=2).split_paths()  # the default data: the shipped T91 subset
    assert len(shipped["train"]) + len(shipped["valid"]) == 65 and 5 <= len(shipped["valid"]) <= 10


def test_shipped_training_images_are_small_and_documented() -> None:
    files = list_images(default_data())
    assert len(files) == 65 and all(f.name.startswith("000t") for f in files)  # T91
    assert sum(f.stat().st_size for f in files) < 5_000_000
    readme = (default_data() / "README.md").read_text()
    assert "T91" in readme and "J. Yang" in readme and "2010" in readme  # where they come from


def test_valid_data_folder_must_not_overlap(images: Path) -> None:
    task = SRTask(str(images), valid_data=str(images), scale=2)
    with pytest.raises(NasflowError, match="shares 6 image"):
        task.split_paths()


def test_rank_shares_union_is_the_single_process_batch(task: SRTask, monkeypatch) -> None:
    monkeypatch.setattr(task_module, "MIN_EPOCH_BATCHES", 2)  # cross an epoch boundary soon
    single = take(task.batches("train", 6, seed=5), 5)
    shares = [take(task.batches("train", 6, seed=5, rank=r, world_size=3), 5) for r in range(3)]
    for j, (lr, hr) in enumerate(single):
        for r in range(3):
            assert torch.equal(shares[r][j][0], lr[r::3]) and torch.equal(shares[r][j][1], hr[r::3])
    with pytest.raises(NasflowError, match="does not split over 4 processes"):
        task.batches("train", 6, seed=0, rank=0, world_size=4)
    with pytest.raises(NasflowError, match="need 0 <= rank < world_size"):
        task.batches("train", 6, seed=0, rank=3, world_size=3)


def test_state_dict_resumes_the_same_batches(task: SRTask, monkeypatch) -> None:
    monkeypatch.setattr(task_module, "MIN_EPOCH_BATCHES", 2)
    it = task.batches("train", 4, seed=1)
    assert it.batches_per_epoch == 2
    take(it, 3)  # into epoch 1
    state = it.state_dict()
    assert state == {"epoch": 1, "position": 1}
    expected = take(it, 4)
    resumed = task.batches("train", 4, seed=1)
    resumed.load_state_dict(state)
    assert same(take(resumed, 4), expected)
    # a new epoch draws new patches
    fresh = task.batches("train", 4, seed=1)
    assert not same(take(fresh, 2), expected[1:3])


# --- options --------------------------------------------------------------------------------
def test_scale_comes_from_the_space_and_must_agree() -> None:
    space = load_space(SPACE, {"scale": 3})
    task = make_task(None, {"patch": 48}, space)
    assert isinstance(task, SRTask) and task.scale == 3
    with pytest.raises(NasflowError, match="scale=2 disagrees with the space's scale 3"):
        make_task("sr", {"scale": 2}, space)
    with pytest.raises(NasflowError, match="patch=50 is not a multiple of the scale 3"):
        make_task("sr", {"patch": 50}, space)
    with pytest.raises(NasflowError, match="no option 'paatch'; did you mean 'patch'"):
        make_task("sr", {"paatch": 48}, space)
    assert make_task("sr", {"lr_patch": 64}, space).patch == 192  # the paper's x3 retraining patch


@pytest.mark.parametrize("options, message", [
    ({"mu": -1}, "mu must be a number >= 0"),
    ({"workers": -1}, "workers must be an integer >= 0"),
    ({"valid_fraction": 1.5}, "valid_fraction must be between 0 and 1"),
    ({"patch": 32, "lr_patch": 16}, "patch .HR. or lr_patch, not both"),
    ({"data": "/no/such/folder"}, "does not exist"),
])
def test_bad_options_fail_clearly(options: dict, message: str) -> None:
    with pytest.raises(NasflowError, match=message):
        task = SRTask(scale=2, **options)
        task.split_paths()


# --- loss and evaluation --------------------------------------------------------------------
class Nearest(nn.Module):
    """x2 nearest-neighbour upscaling with one trainable gain (so the loss has a gradient)."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") * self.gain


def test_loss_is_l1_plus_mu_hfen(task: SRTask) -> None:
    lr, hr = next(task.batches("train", 4, seed=0))
    model = Nearest()
    total, terms = task.loss(model, (lr, hr))
    sr = F.interpolate(lr, scale_factor=2, mode="nearest")
    assert terms["l1"] == pytest.approx(float(F.l1_loss(sr, hr)), rel=1e-5)
    assert terms["hfen"] > 0
    assert float(total.detach()) == pytest.approx(terms["l1"] + 0.2 * terms["hfen"], rel=1e-5)
    total.backward()
    assert model.gain.grad is not None and float(model.gain.grad) != 0
    with pytest.raises(NasflowError, match="is the space's scale 2"):
        task.loss(nn.Identity(), (lr, hr))


def test_evaluate_scores_the_bench_set(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(default_bench() / "bird.png", bench / "bird.png")
    task = SRTask(scale=2, bench=str(bench), ssim=False, cache=str(tmp_path / "cache"))
    model = Nearest().train()
    scores = task.evaluate(model)
    assert set(scores) == {"psnr"} and 25 < scores["psnr"] < 40  # nearest-neighbour, bird x2
    assert model.training  # handed back in the mode it came in
    hr, lr = task._bench[0].hr, task._bench[0].lr
    with torch.no_grad():
        sr = Nearest()(torch.from_numpy(lr).permute(2, 0, 1)[None].float())[0]
    assert scores["psnr"] == pytest.approx(psnr(sr, hr, crop_border=2), abs=1e-6)
    both = SRTask(scale=2, bench=str(bench), cache=str(tmp_path / "cache")).evaluate(model)
    assert set(both) == {"psnr", "ssim"} and 0.5 < both["ssim"] < 1


# --- presets --------------------------------------------------------------------------------
def test_paper_preset_is_the_paper(tmp_path: Path) -> None:
    used, settings = preset_section("sr", "paper", "search")
    config = SearchConfig.build(apply_preset(settings, {}, load_space(SPACE).params))
    defaults = SearchConfig()
    for key in ("strategy", "steps", "warmup", "batch_size", "gamma", "regularizer",
                "weights_optim", "arch_optim", "snapshot_steps"):
        assert getattr(config, key) == getattr(defaults, key), key
    # lambda is MiLeNAS's option now: the preset's, defaults filled in, are the default's.
    milenas = get_strategy("milenas")
    assert milenas.parse_options(config.strategy_options) == milenas.parse_options(defaults.strategy_options)
    assert config.overrides == {"channels": 48} and config.task_options == {"patch": 64, "mu": 0.2}
    train = preset_section("sr", "paper", "train")[1]
    assert (train["batch_size"], train["lr"], train["lr_halve_every"], train["steps"]) == (32, 3e-4, 400_000, 2_000_000)
    task = make_task("sr", train["task_options"], load_space(SPACE, {"scale": 4}))
    assert task.patch == 256


def test_quick_preset_is_the_measured_main_job_budget() -> None:
    """The quick preset the README's main job runs (its PSNR and time table is in the README
    and spaces/dlsr/presets.py): 220 search steps of which 160 warm-up, with L_P weighted 50,
    then 2400 training steps with a cosine schedule from 4e-3, validated twice."""
    from nasflow.train.config import TrainConfig, preset_changes

    _, search = preset_section("sr", "quick", "search")
    config = SearchConfig.build(apply_preset(search, {}, load_space(SPACE).params))
    assert (config.steps, config.warmup, config.batch_size) == (220, 160, 8)
    assert (config.regularizer, config.gamma) == ("params", 50.0)
    assert config.overrides == {"channels": 16} and config.task_options == {"patch": 32}
    assert config.weights_optim.lr == 1e-3 and config.arch_optim.lr == 3e-3
    assert all(0 < s < config.steps for s in config.snapshot_steps)
    _, train = preset_section("sr", "quick", "train")
    tc = TrainConfig.build(preset_changes("quick", train))
    assert (tc.steps, tc.batch_size, tc.optim.lr, tc.schedule) == (2400, 8, 4e-3, "cosine")
    assert tc.steps % tc.validate_every == 0 and tc.steps // tc.validate_every == 2
    assert tc.lr_at(0) == 4e-3 and tc.lr_at(tc.steps) == pytest.approx(0.0, abs=1e-12)
    assert tc.task_options == {"patch": 48}


def test_presets_default_to_quick_and_flags_override() -> None:
    used, settings = preset_section("sr", None, "search")
    assert used == "quick"
    merged = apply_preset(settings, {"steps": 7, "task_options": {"mu": 0.5}}, ["channels", "scale"])
    assert merged["steps"] == 7 and merged["task_options"] == {"patch": 32, "mu": 0.5}
    assert merged["overrides"] == settings["overrides"]
    assert "overrides" not in apply_preset(settings, {}, ["C"])  # a param the space lacks
    assert preset_section("sr", "none", "search") == (None, {})
    with pytest.raises(NasflowError, match="has no preset 'fast'; its presets: quick, paper, none"):
        preset_section("sr", "fast", "search")


def test_a_user_patch_replaces_the_preset_lr_patch() -> None:
    """The paper's train preset sets lr_patch (HR patch by scale); --task-opt patch=96 must
    win instead of colliding with it, and the task then sees one of the two."""
    from nasflow.tasks.presets import exclusive_options

    _, train = preset_section("sr", "paper", "train")
    merged = apply_preset(train, {"task_options": {"patch": 96}}, ["channels", "scale"], exclusive_options("sr"))
    assert merged["task_options"] == {"patch": 96, "mu": 0.2}
    assert SRTask(**merged["task_options"], space_params={"scale": 2}, workers=0).patch == 96
    kept = apply_preset(train, {"task_options": {"mu": 0.1}}, ["scale"], exclusive_options("sr"))
    assert kept["task_options"] == {"lr_patch": 64, "mu": 0.1}


# --- a real (tiny) search -------------------------------------------------------------------
def test_tiny_search_on_the_dlsr_space_derives_a_valid_architecture(images: Path, tmp_path: Path) -> None:
    config = SearchConfig(space=str(SPACE), overrides={"channels": 4}, steps=3, warmup=1, batch_size=2,
                          task_options={"data": str(images), "patch": 32, "workers": 0,
                                        "cache": str(tmp_path / "cache")},
                          snapshot_steps=[], device="cpu", log_every=1)
    result = run_search(config, tmp_path / "run")
    assert result.finished and result.step == 3
    derived = derive_run(tmp_path / "run")
    assert set(derived.genotype.choices) == {"mrb1", "mrb2", "mrb3"}
    assert set(derived.genotype.edges) == {f"cell{j}_in" for j in range(3, 7)}
    for j in range(3, 7):
        kept = derived.genotype.edges[f"cell{j}_in"]
        assert len(kept) == 2 and all(int(c.removeprefix("cell")) < j for c in kept)
    assert derived.params > 0 and (derived.out_dir / "arch.yaml").is_file()


def test_patches_too_small_for_the_model_fail_clearly(images: Path, tmp_path: Path) -> None:
    from nasflow.space.graph import build_graph
    from nasflow.compile.supernet import compile_graph

    model = compile_graph(build_graph(load_space(SPACE, {"channels": 4})))
    task = SRTask(str(images), scale=2, patch=16, workers=0, cache=str(tmp_path))
    with pytest.raises(NasflowError, match="cannot run on LR patches of 8 x 8.*larger patch"):
        task.loss(model, next(task.batches("train", 2, seed=0)))


def test_search_command_applies_the_preset_below_flags(images: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nasflow.cli.main import app

    runner = CliRunner()
    common = [str(SPACE), "--steps", "2", "--warmup", "1", "--batch", "2", "--set", "channels=4", "--quiet",
              "--device", "cpu", "--task-opt", f"data={images}", "--task-opt", f"cache={tmp_path / 'cache'}"]
    res = runner.invoke(app, ["search", *common, "--out", str(tmp_path / "quick")])
    assert res.exit_code == 0, res.output
    assert "preset quick of task sr" in res.output
    config = SearchConfig.model_validate_json((tmp_path / "quick" / "config.json").read_text())
    assert (config.steps, config.batch_size, config.overrides) == (2, 2, {"channels": 4})  # flags win
    assert config.task_options["patch"] == 32 and config.arch_optim.lr == 3e-3  # from the preset
    bad = runner.invoke(app, ["search", *common, "--preset", "fast", "--out", str(tmp_path / "x")])
    assert isinstance(bad.exception, NasflowError) and "has no preset 'fast'" in str(bad.exception)
    assert not (tmp_path / "x").exists()
