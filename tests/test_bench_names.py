"""bench/ scripts put their folder first on sys.path (to import each other), so a bench module
named like one of the repository's packages would shadow it for every later import in that
process, the tests' included ('strategies' is not a package)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_bench_module_is_named_like_a_package_of_the_repository() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert {"nasflow", "strategies", "cli", "spaces"} <= packages
    clashes = sorted(m.stem for m in (ROOT / "bench").glob("*.py") if m.stem in packages)
    assert not clashes, f"bench modules shadowing packages: {clashes}"
