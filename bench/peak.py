"""This machine's achieved peak (by hand, never in tests): what `nasflow bench` divides by.

    python bench/peak.py --threads 2              # cached per machine and thread count
    python bench/peak.py --threads 2 --fresh      # measure again (e.g. the cache was made under load)

Prints the fp32 (and, where the CPU has bf16 arithmetic, bf16) FLOP/s of a large matmul and a
large dense 3x3 conv, and the memory bandwidth of a large copy and triad, measured through this
torch build at the thread count given (nasflow/hardware/peak.py says how).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="measure again and replace the cached figures")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from nasflow.hardware.peak import machine_peak

    torch.set_num_threads(args.threads)
    peak = machine_peak(use_cache=not args.fresh)
    print(f"Peak of {peak.machine}, {peak.threads} threads, torch {torch.__version__} ({peak.source})")
    rows = [("fp32 matmul", peak.matmul_fp32), ("fp32 dense conv 3x3", peak.conv_fp32),
            ("bf16 matmul", peak.matmul_bf16), ("bf16 dense conv 3x3", peak.conv_bf16)]
    for name, value in rows:
        shown = "not measured (no avx512_bf16 / amx_bf16)" if value is None else f"{value / 1e9:8.1f} GFLOP/s"
        print(f"  {name:22s} {shown}")
    print(f"  {'copy':22s} {peak.copy_bw / 1e9:8.1f} GB/s\n  {'triad':22s} {peak.triad_bw / 1e9:8.1f} GB/s")
    out = peak.to_json() | {"torch": torch.__version__}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
