"""The main job from an installed wheel, in an empty folder (issue 27): `pip install` of the
built wheel into a fresh environment (tests/wheel_venv.py), then, from a folder with nothing
in it, search the built-in space `dlsr` by name, derive, retrain and evaluate, on the training
images and the Set5 images shipped inside the installed package. Two steps each: this checks
that the release works, not what it learns. (.ci/run runs a sample of the tests against the
installed package too.)"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from wheel_venv import wheel_venv


def test_main_job_from_an_installed_wheel_in_an_empty_folder(tmp_path: Path) -> None:
    python = wheel_venv(tmp_path / "w")
    nasflow = python.parent / "nasflow"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", COLUMNS="120")

    def run(*args: str) -> str:
        done = subprocess.run([str(nasflow), *args], cwd=empty, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, f"nasflow {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    # the package, its spaces and its data are the installed ones, not the checkout's
    where = subprocess.run([str(python), "-c", "import nasflow, nasflow.spaces.dlsr.task as t, "
                            "nasflow.spaces.dlsr.evaluate as e; print(nasflow.__file__); print(t.default_data()); "
                            "print(e.default_bench())"], cwd=empty, capture_output=True, text=True, env=env)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).is_relative_to(site) and Path(line).exists(), line
    assert run("--version").startswith("nasflow ")
    spaces = json.loads(run("spaces", "--json"))
    assert Path(spaces["dlsr"]["file"]).is_relative_to(site)

    tiny = ("--steps", "2", "--batch", "2", "--task-opt", "patch=48", "--device", "cpu", "--quiet")
    run("search", "dlsr", *tiny, "--warmup", "1", "--set", "channels=8", "--levers", "given",
        "--snapshot-steps", "none", "--out", "runs/dlsr")
    run("derive", "runs/dlsr")
    run("train", "runs/dlsr/derived", *tiny, "--validate-every", "2", "--out", "runs/dlsr-train")
    scores = json.loads(run("eval", "runs/dlsr-train/model", "--backend", "eager", "--json"))
    assert scores["params"] > 0 and scores["metrics"]["psnr"] > 0
    assert not any(p.name != "runs" for p in empty.iterdir()), sorted(p.name for p in empty.iterdir())
