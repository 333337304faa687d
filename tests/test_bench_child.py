"""`nasflow bench` runs each configuration in a child (bench/child.py) whose peak memory is its
own, whose failure is one line, and which ends with the bench (issue 25 item 4)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from child import run_child, why  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and PR_SET_PDEATHSIG are Linux's")

_PEAK = f"import json, sys; sys.path.insert(0, {str(BENCH)!r}); from child import peak_rss_mb; " \
        "print(json.dumps({'peak': peak_rss_mb()}))"


def test_a_row_peak_is_the_child_own_not_what_it_inherited() -> None:
    """ru_maxrss of a child counts the parent's resident set at the fork: every row of a bench
    that had grown to 3129 MB read 3129 MB. VmHWM is the child's own."""
    held = bytearray(300 << 20)
    for i in range(0, len(held), 4096):
        held[i] = 1  # resident
    got, error = run_child([sys.executable, "-c", _PEAK])
    assert error is None and got is not None
    assert got["peak"] < 200, got  # a bare interpreter: ~10 MB; ru_maxrss said >= 300
    del held


def test_a_failed_child_is_one_line() -> None:
    got, error = run_child([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    assert got is None and error is not None and error.startswith("killed by SIGKILL") and "OOM" in error
    got, error = run_child([sys.executable, "-c", "raise SystemExit('no space for the batch')"])
    assert got is None and error == "no space for the batch (exit status 1)"
    got, error = run_child([sys.executable, "-c", "print('not json')"])
    assert got is None and error is not None and error.startswith("printed no result")
    assert why(-signal.SIGTERM, "") == "killed by SIGTERM"


_PARENT = """
import sys
sys.path.insert(0, sys.argv[1])
from child import run_child
run_child([sys.executable, "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)",
           sys.argv[2]])
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_a_bench_stopped_by_sigterm_leaves_no_configuration_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(BENCH), str(pid_file)])
    try:
        for _ in range(600):  # the child has started
            if pid_file.is_file() and pid_file.read_text():
                break
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == -signal.SIGTERM  # no handler in the bench: it ends now
        for _ in range(200):  # the kernel ends the child with the bench (it would sleep 60 s)
            if not _alive(child):
                break
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        parent.kill()
        if pid_file.is_file() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)

