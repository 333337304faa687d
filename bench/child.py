"""One benchmark configuration in a process of its own, which ends with the bench:

    result, error = run_child([sys.executable, "bench/search_step.py", json.dumps(cfg)], env)

`result` is the JSON of the child's last line of output; else `error` is one line saying why
not (the child's last error line and exit status, or the signal that ended it, SIGKILL named
as the OOM killer's). The child asks the kernel for SIGKILL when the bench dies (as
nasflow/runs/children.py does with SIGTERM; a configuration has nothing to save, and a
search timing there would take SIGTERM as "stop after this step"), so a bench stopped by
SIGTERM (its default action: no handler runs) or killed outright leaves no configuration
running. Peak memory is read in the
child from /proc/self/status's VmHWM (peak_rss_mb): ru_maxrss would also count what the
child inherited, the bench's whole resident set at the fork (3129 MB for every row once the
bench had timed the levers in its own process).
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from typing import Any


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM) in MB, not what it inherited at its fork."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: the best there is


def why(returncode: int, stderr: str) -> str:
    """One line for a child that failed."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (the kernel's OOM killer sends it when memory runs out)" if returncode == -signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "no message")
    return f"{last} (exit status {returncode})"


def _ender(parent: int) -> Any:
    """What the child runs between fork and exec: prctl(PR_SET_PDEATHSIG, SIGKILL), with libc
    loaded here, before the fork (a forked child of a threaded process must not load libraries
    or import), and an end if the bench is gone already."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def run() -> None:
        prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(143)

    return run


def run_child(args: list[str], env: dict[str, str] | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None) or (None, why not): see the module docstring."""
    proc = subprocess.run(args, capture_output=True, text=True, env=env, preexec_fn=_ender(os.getpid()))
    if proc.returncode != 0:
        return None, why(proc.returncode, proc.stderr)
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return None, f"printed no result ({why(1, proc.stderr).rsplit(' (exit', 1)[0]})"
    return (result, None) if isinstance(result, dict) else (None, "printed no result")
