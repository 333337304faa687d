"""Peak memory of `nasflow upscale` and `nasflow eval` against the bound docs/howto/limits.md
states, for images of 0.5 to 12 megapixels, on every backend, with a cold and a warm cache.

    python bench/memory.py [--model DIR] [--megapixels 0.5,1.5,3,6,12] [--backends auto,eager,onnx,openvino]
                           [--commands upscale,eval] [--states cold,warm] [--tile-memory MIB] [--threads N]

Each figure is one command in a fresh child process: its peak RSS from wait4 (ru_maxrss: the
child's own peak, or a worker's it waited for if larger; at least this script's own ~100 MB,
which a child's ru_maxrss inherits at the fork), and the process tree's summed RSS sampled
every 10 ms (the OpenVINO backend's worker is a second process: the two add up). Each row
also shows the machine's 1-minute load average as it ended.
Cold: an empty NASFLOW_CACHE (the ONNX export, the OpenVINO check and, for auto, the backend
timing all run); warm: the same command again on that cache. The images are mosaics of the
shipped Set14 (each picture resized to 512 x 512), so their content is real; eval gets a
folder holding one HR image of that size. Default model: the released DLSR-S (56K params,
x2), imported from ../shared/weights if no --model is given.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET14 = ROOT.parent / "shared" / "datasets" / "Set14"
DLSR_S = ROOT.parent / "shared" / "weights" / "dlsr" / "RFDN_beta21_tiny18_ps128_20210306_lr4_700.pt"
sys.path.insert(0, str(ROOT / "tests"))


def mosaic(megapixels: float, path: Path, multiple: int = 2) -> tuple[int, int]:
    """A 3:2 PNG of about `megapixels` tiled from Set14's pictures; sides a multiple of `multiple`."""
    from PIL import Image

    w = int(math.sqrt(megapixels * 1e6 * 1.5)) // multiple * multiple
    h = int(w / 1.5) // multiple * multiple
    pictures = [Image.open(p).convert("RGB").resize((512, 512), Image.BICUBIC) for p in sorted(SET14.glob("*.png"))]
    canvas = Image.new("RGB", (w, h))
    k = 0
    for y in range(0, h, 512):
        for x in range(0, w, 512):
            canvas.paste(pictures[k % len(pictures)], (x, y))
            k += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, compress_level=1)
    return w, h


def _tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and its descendants now (0 once gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return total


def measure(args: list[str], env: dict[str, str]) -> tuple[int, int, float, int, str]:
    """(ru_maxrss bytes, sampled tree peak bytes, seconds, exit code, last output line) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stdout is not None
    output = proc.stdout.read()  # until the child closes it: it has ended or is ending
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    last = next((line for line in reversed(output.strip().splitlines()) if line.strip()), "")
    return usage.ru_maxrss * 1024, peak[0], time.perf_counter() - start, proc.returncode, last


def _cpu_name() -> str:
    """The CPU's model name (lscpu's 'Model name'), for the figures' machine."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a model directory (default: the released DLSR-S)")
    parser.add_argument("--megapixels", default="0.5,1.5,3,6,12")
    parser.add_argument("--backends", default="auto,eager,onnx,openvino")
    parser.add_argument("--commands", default="upscale,eval")
    parser.add_argument("--states", default="cold,warm", help="cold (an empty cache), warm (the same command again)")
    parser.add_argument("--tile-memory", type=int, default=1024, help="MiB (nasflow upscale / eval --tile-memory)")
    parser.add_argument("--threads", type=int, default=1)
    opts = parser.parse_args()

    from nasflow.deploy.memory import BASE_MEMORY_MIB, memory_bound

    work = Path(tempfile.mkdtemp(prefix="nasflow-memory-"))
    env = {**os.environ, "OMP_NUM_THREADS": str(opts.threads), "NASFLOW_THREADS": str(opts.threads),
           "TERM": "dumb", "COLUMNS": "200"}
    nasflow = [sys.executable, "-m", "nasflow.cli.main"]
    model = opts.model
    if model is None:
        model = work / "dlsr-s"
        subprocess.run([*nasflow, "import", str(DLSR_S), "-o", str(model)], env=env, check=True,
                       capture_output=True)
    bound = memory_bound(opts.tile_memory)
    print(f"bound: --tile-memory {opts.tile_memory} MiB + base {BASE_MEMORY_MIB} MiB = {bound / 2**20:.0f} MiB; "
          f"model {model}; {opts.threads} thread(s)")
    print(f"machine {_cpu_name()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'command':8} {'MP':>5} {'size':>11} {'backend':9} {'cache':5} {'ru_maxrss':>10} {'tree peak':>10} "
          f"{'s':>6} {'load':>5}  within")
    worst = 0
    for mp in (float(m) for m in opts.megapixels.split(",")):
        image = work / "images" / f"{mp:g}mp.png"
        w, h = mosaic(mp, image)
        bench = work / "bench" / f"{mp:g}mp"
        bench.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, bench / image.name)
        for backend in opts.backends.split(","):
            for command in opts.commands.split(","):
                cache = work / f"cache-{mp:g}-{backend}-{command}"
                shutil.rmtree(cache, ignore_errors=True)  # cold: empty; warm: what the cold run left
                for state in opts.states.split(","):
                    call = ([*nasflow, "upscale", str(model), str(image), "-o", str(work / "out.png")]
                            if command == "upscale" else
                            [*nasflow, "eval", str(model), "--bench", str(bench)])
                    call += ["--tile-memory", str(opts.tile_memory)]
                    if backend != "auto":
                        call += ["--backend", backend]
                    rss, tree, seconds, code, last = measure(call, {**env, "NASFLOW_CACHE": str(cache)})
                    peak = max(rss, tree)
                    worst = max(worst, peak)
                    ok = "yes" if code == 0 and peak <= bound else ("FAILED: " + last if code else "NO")
                    print(f"{command:8} {mp:5g} {f'{w}x{h}':>11} {backend:9} {state:5} {rss / 2**20:8.0f} M "
                          f"{tree / 2**20:8.0f} M {seconds:6.1f} {os.getloadavg()[0]:5.1f}  {ok}", flush=True)
    print(f"largest peak {worst / 2**20:.0f} MiB; bound {bound / 2**20:.0f} MiB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
