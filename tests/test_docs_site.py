"""The documentation site (issue 27): `mkdocs build --strict` passes (no broken link, every
API entry resolves), the Python API page has an entry for every public name, every public
name carries a docstring of its own, and every page's python blocks are run by a test."""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nasflow

ROOT = Path(__file__).resolve().parents[1]
API_PAGE = ROOT / "docs" / "reference" / "api.md"
PUBLIC = [n for n in nasflow.__all__ if n != "__version__"]

# Documentation modules that import the packages under another path than they install at
# (package-dir in pyproject.toml): mkdocstrings reads the source tree.
SOURCE_PATH = {"nasflow.strategies": "strategies.base"}

# Pages whose bare ```python blocks other tests run, and blocks that are fragments of a
# longer program (shown, not run): every other page's blocks run here.
RUN_ELSEWHERE = {"architecture.md": "test_docs_examples.py", "space-language.md": "test_docs_examples.py",
                 "writing-a-strategy.md": "test_strategy_doc.py"}
FRAGMENTS = {"reference/file-formats.md": "saving a supernet's arch tensors: `supernet` comes from the page before"}

NEEDS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    missing = [m for m in NEEDS if importlib.util.find_spec(m.split(".")[0]) is None
               or importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed ({', '.join(missing)} missing): pip install -e '.[docs]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f",
                           str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cli_page = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    for command in ("search", "derive", "train", "eval", "validate", "cost", "import", "upscale"):
        assert f"nasflow {command}</code>" in cli_page, f"the CLI reference has no `nasflow {command}`"


def test_api_page_has_every_public_name() -> None:
    entries = set(re.findall(r"^::: (\S+)$", API_PAGE.read_text(), flags=re.M))
    for name in PUBLIC:
        module = nasflow._API[name]  # type: ignore[attr-defined]
        assert f"{SOURCE_PATH.get(module, module)}.{name}" in entries, f"docs/reference/api.md has no entry for {name}"


def _has_own_docstring(name: str) -> bool:
    obj = getattr(nasflow, name)
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
        return bool(doc) and not doc.startswith(f"{obj.__name__}(")  # not a dataclass's generated one
    if inspect.isfunction(obj):
        return bool(obj.__doc__)
    # a module-level value: an attribute docstring (a string right after its assignment)
    for path in (ROOT / "nasflow").rglob("*.py"):
        body = ast.parse(path.read_text()).body
        for stmt, after in zip(body, body[1:]):
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
                stmt.targets[0] if isinstance(stmt, ast.Assign) else None)
            if isinstance(target, ast.Name) and target.id == name and isinstance(after, ast.Expr) \
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
                return True
    return False


def test_every_public_name_is_documented() -> None:
    undocumented = [n for n in PUBLIC if not _has_own_docstring(n)]
    assert not undocumented, f"public names without a docstring: {undocumented}"


def _bare_python_blocks(page: Path) -> list[str]:
    """```python blocks without attributes (`file=` and `title=` blocks have their own tests)."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


DOCS = ROOT / "docs"
RUN_HERE = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if _bare_python_blocks(p)
                  and str(p.relative_to(DOCS)) not in {**RUN_ELSEWHERE, **FRAGMENTS})


def test_every_python_block_is_run_by_a_test() -> None:
    for page, test in RUN_ELSEWHERE.items():
        assert _bare_python_blocks(DOCS / page), f"docs/{page} has no python block for {test} to run"
        assert page in (ROOT / "tests" / test).read_text(), f"tests/{test} does not name docs/{page}"
    assert "reference/api.md" in RUN_HERE


@pytest.mark.parametrize("page", RUN_HERE)
def test_python_blocks_run(page: str, tmp_path: Path) -> None:
    """A page's python blocks, in order, in one fresh interpreter in an empty folder."""
    script = tmp_path / "page.py"
    script.write_text("\n\n".join(_bare_python_blocks(DOCS / page)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, f"docs/{page}'s python blocks failed:\n{done.stderr[-3000:]}"
