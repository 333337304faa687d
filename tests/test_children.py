"""Worker processes end with their parent (issue 25, nasflow/runs/children.py): a parent
killed with SIGKILL runs no cleanup, and its prepare-data workers kept the store's lock (the
next prepare-data or train waited forever), its DataLoader and --seeds workers ran on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# Starts, from nasflow's own code paths, each kind of worker nasflow starts, all stuck in work
# that would last 10 minutes: DataLoader workers of the SR batch stream, a --seeds worker
# process and a retraining population's (spawned) and prepare-data's workers (forked, holding
# the store's lock); then waits.
_PARENT = textwrap.dedent("""
    import sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    import numpy as np
    import torch
    from PIL import Image
    torch.set_num_threads(1)
    import nasflow.search.multiseed as multiseed
    import nasflow.spaces.dlsr.data_store as data_store
    from nasflow.spaces.dlsr.batches import PatchBatches
    from nasflow.spaces.dlsr.data import LRCache

    class Slow:
        def __len__(self): return 4
        def set_epoch(self, epoch): pass
        def __getitem__(self, i):
            time.sleep(600)

    stream = PatchBatches(Slow(), 2, workers=2)
    stream._loader = stream._start_epoch()  # the DataLoader's workers start and fetch

    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=multiseed._init_worker, initargs=(None, 1))
    pool.submit(abs, 1).result()  # the worker is up
    pool.submit(time.sleep, 600)
    import nasflow.runs.population_local as population_local  # a retraining population's worker
    retrain = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=population_local._init_worker, initargs=(None, 1))
    retrain.submit(abs, 1).result()
    retrain.submit(time.sleep, 600)

    def stuck(*args):
        time.sleep(600)
    data_store._prepare_one = stuck
    paths = []
    for k in range(4):
        paths.append({tmp!r} + f"/{{k}}.png")
        Image.fromarray(np.full((16, 16, 3), k, np.uint8)).save(paths[-1])
    print("preparing", flush=True)
    data_store.DecodedStore(LRCache({tmp!r} + "/cache"), workers=2).prepare(paths, 2)
""")


def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is `pid`."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_die_when_their_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT.format(tmp=str(tmp_path))], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    children: set[int] = set()
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "preparing"
        # 2 DataLoader workers, a spawned --seeds worker and a retraining population's, 2 forked
        # prepare-data workers (and multiprocessing's resource tracker, which ends by itself when
        # its pipe closes)
        deadline = time.monotonic() + 60
        while len(children := _children(parent.pid)) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(children) >= 6, f"the workers did not start: {children}"
        time.sleep(1)  # each ran its initializer (a fork's is at once; the spawned one answered)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in children if _alive(p)], "workers outlived their killed parent"
    finally:
        parent.kill()
        parent.wait()
        for pid in children:  # only the processes this test started
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_an_orphan_ends_itself() -> None:
    """A worker whose parent died before it asked (the signal would never come) ends at once."""
    code = ("from nasflow.runs.children import die_with_parent\n"
            "die_with_parent(parent=-1)\nprint('alive')")  # -1: not its parent, as after a reparenting
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGTERM and "alive" not in done.stdout
