"""A fresh virtual environment holding nasflow as a user's `pip install nasflow-*.whl` leaves
it, not the editable checkout: the wheel is built from a copy of the working tree (so builds
running at the same time never share a build/ folder) and installed with --no-deps over the
packages of the running interpreter, which a .pth line puts on the new environment's path
after its own site-packages (torch is not installed a second time; the checkout's editable
nasflow is not seen, since .pth files of an added path are not read).

Used by tests/test_wheel.py and by .ci/run (`python tests/wheel_venv.py DIR` prints the new
environment's python)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "runs", "build", "site", "dist", "nasflow.egg-info", "__pycache__", ".pytest_cache"}


def copy_source(dest: Path) -> Path:
    """The files a build reads: git's tracked and untracked-but-not-ignored files."""
    dest.mkdir(parents=True)
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but the known clutter
        shutil.copytree(ROOT, dest, dirs_exist_ok=True, ignore=lambda _, names: [n for n in names if n in SKIP])
        return dest
    for name in filter(None, listed):
        src = ROOT / name
        if name.split("/", 1)[0] in SKIP or not src.is_file():  # a file deleted but not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    return dest


def _can_build_here() -> bool:
    """This environment's setuptools builds wheels itself (70.1 and later), or with `wheel`."""
    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def build_wheel(work: Path) -> Path:
    """nasflow-*.whl built from a copy of the working tree, in `work`/wheels."""
    source = copy_source(work / "src")
    isolation = ["--no-build-isolation"] if _can_build_here() else []  # else pip fetches setuptools
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(work / "wheels"),
                    str(source)], cwd=source, check=True, timeout=600)
    (wheel,) = (work / "wheels").glob("nasflow-*.whl")
    return wheel


def wheel_venv(work: Path) -> Path:
    """The python of a new environment in `work`/venv with the wheel installed; returns it."""
    wheel = build_wheel(work)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_nasflow_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=600)
    return python


if __name__ == "__main__":
    print(wheel_venv(Path(sys.argv[1])))
