"""`nasflow compare`: the crops are the HR, bicubic and model outputs at the box, and each
label's PSNR / SSIM is what the evaluation (score_image) gives for the whole image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasflow.compile.supernet import compile_graph
from nasflow.errors import NasflowError
from nasflow.runs.modeldir import save_model
from nasflow.space.graph import build_graph
from nasflow.space.load import load_space
from nasflow.spaces.dlsr.compare import Box, compare_models, parse_box
from nasflow.spaces.dlsr.compare_figure import comparison_figure, write_comparison
from nasflow.spaces.dlsr.data import BenchImage, load_rgb, make_lr
from nasflow.spaces.dlsr.evaluate import default_bench, score_image, upscale
from nasflow.spaces.dlsr.images import to_image
from nasflow.spaces.dlsr.metrics import mod_crop

DLSR = Path(__file__).resolve().parents[2] / "spaces" / "dlsr"
IMAGE = default_bench() / "butterfly.png"  # 256 x 256, shipped


def tiny_model(path: Path, scale: int = 2, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(seed)
    space = load_space(DLSR / "dlsr-s.yaml").with_params({"channels": 4, "scale": scale})
    model = compile_graph(build_graph(space))
    save_model(path, space, model.state_dict(), {"paper_model": f"tiny-{seed}"})
    return path, model.eval()


def test_crops_and_scores_are_the_evaluations(tmp_path):
    _, a = tiny_model(tmp_path / "a", seed=0)
    _, b = tiny_model(tmp_path / "b", seed=1)
    box = Box(100, 60, 48, 40)
    c = compare_models([("a", a), ("b", b)], IMAGE, box, 2)
    assert [p.name for p in c.panels] == ["HR", "bicubic", "a", "b"]
    hr = mod_crop(load_rgb(IMAGE), 2)
    lr = make_lr(hr, 2)
    assert np.array_equal(c.panels[0].crop, hr[60:100, 100:148]) and c.panels[0].psnr is None
    for panel, model in zip(c.panels[2:], (a, b)):
        assert panel.crop.shape == (40, 48, 3)
        assert np.array_equal(panel.crop, to_image(upscale(model, lr))[60:100, 100:148])
        want = score_image(model, BenchImage("butterfly", hr, lr), 2)
        assert (panel.psnr, panel.ssim) == (want.psnr, want.ssim)
        assert (c.panels[1].psnr, c.panels[1].ssim) == (want.bicubic_psnr, want.bicubic_ssim)
    assert c.panels[2].psnr != c.panels[3].psnr  # two models, two scores
    fig = comparison_figure(c)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "butterfly.png (x2)"
    assert titles[1:] == ["HR\nreference"] + [f"{p.name}\n{p.psnr:.2f} dB / {p.ssim:.4f}" for p in c.panels[1:]]
    for ax, p in zip(fig.axes[1:], c.panels):
        assert np.array_equal(ax.get_images()[0].get_array(), p.crop)
    path = write_comparison(c, tmp_path / "c.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and 600 < img.size[0] < 3000 and 200 < img.size[1] < 1200


def test_bad_boxes_fail_clearly():
    assert parse_box("1,2,3,4") == Box(1, 2, 3, 4)
    for text in ("1,2,3", "a,b,c,d", "-1,0,4,4", "0,0,0,4"):
        with pytest.raises(NasflowError, match="must be x,y,w,h in HR pixels"):
            parse_box(text)
    with pytest.raises(NasflowError, match=r"reaches past the image 'butterfly.png' \(256 x 256"):
        compare_models([], IMAGE, Box(250, 0, 10, 10), 2)


def test_an_image_smaller_than_the_model_takes_is_one_line(tmp_path):
    _, a = tiny_model(tmp_path / "a")
    small = tmp_path / "small.png"
    Image.fromarray(load_rgb(IMAGE)[:24, :24]).save(small)  # LR 12 x 12: below ESA's strided pooling
    with pytest.raises(NasflowError, match=r"the LR of image 'small.png' \(12 x 12, x2\) for model 'a' is smaller "
                                           r"than model '.*' can take: its layers need at least \d+ x \d+ pixels"):
        compare_models([("a", a)], small, Box(0, 0, 8, 8), 2)


def test_cli_compare(tmp_path, capsys):
    from nasflow.cli.main import run

    a, _ = tiny_model(tmp_path / "a", seed=0)
    x3, _ = tiny_model(tmp_path / "x3", scale=3)
    out = tmp_path / "cmp.png"
    with pytest.raises(SystemExit) as exc:
        run(["compare", str(a), str(a), "--image", str(IMAGE), "--box", "10,10,32,32", "--names", "one,two",
             "-o", str(out), "--device", "cpu"])
    assert exc.value.code == 0
    printed = capsys.readouterr().out
    assert "one:" in printed and "two:" in printed and out.is_file()
    for argv, message in (
        (["compare", str(a), str(x3), "--image", str(IMAGE), "--box", "0,0,8,8", "--device", "cpu"],
         "upscale by different factors"),
        (["compare", str(a), "--image", str(IMAGE), "--box", "0,0,8,8", "--names", "x,y"], "one per model"),
    ):
        with pytest.raises(SystemExit) as exc:
            run(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
