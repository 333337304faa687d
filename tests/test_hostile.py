"""Hostile and unlucky input (issue 25): each case fails with one line naming the thing and
the fix (exit code 2 from the CLI, no traceback), and a resource limit is checked before
anything is allocated. No test here allocates more than a few MB: each asserts the refusal,
which happens first; RLIMIT_AS backs that up where a refusal that came too late would eat
the machine.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from nasflow import limits
from nasflow.cli.main import run as cli_run
from nasflow.errors import SpaceError
from nasflow.space.load import load_graph

REPO = Path(__file__).resolve().parents[1]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of `nasflow ARGS` run in this process."""
    with pytest.raises(SystemExit) as done:
        cli_run(args)
    err = capsys.readouterr().err
    return done.value.code, err


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    text = " ".join(err.split())  # rich may wrap a long line
    for w in words:
        assert w in text, (w, err)


# --- space files -------------------------------------------------------------------------
def _alias_bomb(path: Path, levels: int = 9) -> Path:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    path.write_text("\n".join([*lines, "name: bomb", "inputs: {x: 3}", "nodes: {}", "output: x"]) + "\n")
    return path


def _deep_blocks(path: Path, n: int) -> Path:
    text = "name: deep\ninputs: {x: 3}\nblocks:\n"
    for i in range(n):
        inner = f"{{block: b{i + 1}, in: x}}" if i < n - 1 else "{op: conv_3x3, in: x, out: 3}"
        text += f"  b{i}:\n    inputs: [x]\n    nodes:\n      n: {inner}\n    output: n\n"
    path.write_text(text + "nodes:\n  top: {block: b0, in: x}\noutput: top\n")
    return path


_TINY = "name: tiny\ninputs: {x: 3}\nnodes:\n  a: {op: conv_3x3, in: x, out: C}\noutput: a\nparams: {C: 8}\n"


def _in_child_with_rlimit(code: str, mb: int = 600) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh Python whose address space is capped at `mb` MB: a refusal that
    came after the allocation would fail there with MemoryError instead of the error line."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mb << 20, mb << 20))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=cap,
                          env=env, timeout=120)


def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = _alias_bomb(tmp_path / "bomb.yaml")
    proc = _in_child_with_rlimit(
        "from nasflow.space.load import load_graph\n"
        f"try:\n    load_graph({str(path)!r})\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    assert "SpaceError" in proc.stdout and "NASFLOW_MAX_YAML_NODES" in proc.stdout, proc.stdout + proc.stderr


def test_an_alias_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("a: &a [1, *a]\nname: x\n")
    with pytest.raises(SpaceError, match=r"loop.yaml:1: .*contains it"):
        load_graph(path)


@pytest.mark.parametrize("text", ["name: " + "[" * 5000 + "]" * 5000,  # flow style
                                  "name: x\nnodes:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200))
                                  + "  " * 201 + "v: 1\n"])
def test_deep_yaml_is_refused_without_recursion(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match="NASFLOW_MAX_YAML_DEPTH"):
        load_graph(path)


def test_aliases_chained_deeper_than_the_limit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text("\n".join(["a0: &a0 [1]", *(f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 200)), "name: x"]))
    with pytest.raises(SpaceError, match="NASFLOW_MAX_YAML_DEPTH"):
        load_graph(path)


def test_blocks_nested_deeper_than_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _deep_blocks(tmp_path / "deep.yaml", 2000)
    with pytest.raises(SpaceError, match=r"deep.yaml:\d+: .*33 or more levels of blocks.*NASFLOW_MAX_BLOCK_DEPTH"):
        load_graph(path)
    # within the limit, and with the limit raised, it builds
    assert len(load_graph(_deep_blocks(tmp_path / "ok.yaml", 30)).nodes) == 2
    monkeypatch.setenv("NASFLOW_MAX_BLOCK_DEPTH", "40")
    assert len(load_graph(_deep_blocks(tmp_path / "ok40.yaml", 40)).nodes) == 2


def test_a_stack_of_1e8_instances_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("name: s\ninputs: {x: 3}\nblocks:\n  b:\n    inputs: [x]\n    nodes:\n"
                    "      c: {op: conv_1x1, in: x, out: 3}\n    output: c\n"
                    "nodes:\n  s: {stack: 100000000, block: b, in: [\"s[i - 1] if i >= 1 else x\"]}\noutput: s\n")
    with pytest.raises(SpaceError, match=r"stack.yaml:10: .*100,000,001 or more nodes.*NASFLOW_MAX_NODES"):
        load_graph(path)


def test_the_nodes_limit_counts_expanded_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text("name: c\ninputs: {x: 3}\nnodes:\n" + "".join(
        f"  n{i}: {{op: conv_1x1, in: {'x' if i == 0 else f'n{i - 1}'}, out: 3}}\n" for i in range(50)) + "output: n49\n")
    assert len(load_graph(path).nodes) == 51
    monkeypatch.setenv("NASFLOW_MAX_NODES", "20")
    with pytest.raises(SpaceError, match="NASFLOW_MAX_NODES"):
        load_graph(path)
    monkeypatch.setenv("NASFLOW_MAX_NODES", "many")
    with pytest.raises(limits.NasflowError, match="NASFLOW_MAX_NODES='many' must be a positive integer"):
        load_graph(path)


def test_a_space_file_larger_than_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(_TINY)
    monkeypatch.setenv("NASFLOW_MAX_SPACE_BYTES", "10")
    with pytest.raises(limits.LimitError, match="NASFLOW_MAX_SPACE_BYTES"):
        load_graph(path)


@pytest.mark.parametrize("data,what", [(b"name: caf\xe9\ninputs: {x: 3}\n", "0xe9"),
                                       (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "0x89")])
def test_a_file_that_is_not_utf8_text(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes,
                                      what: str) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(data)
    code, err = _cli(["validate", str(path)], capsys)
    _one_line_error(code, err, "latin.yaml:1", "not UTF-8 text", what)


@pytest.mark.parametrize("module,hint", [(".foo", "write 'foo'"), ("a/b", "write 'a.b'"), ("", "not a module name"),
                                         ("..", "not a module name")])
def test_invalid_module_names_in_imports(tmp_path: Path, capsys: pytest.CaptureFixture[str], module: str,
                                         hint: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"imports: [{module!r}]\n" + _TINY)
    code, err = _cli(["--trust-imports", "validate", str(path)], capsys)
    _one_line_error(code, err, "s.yaml:1", "is not a module name", hint)


def test_large_valid_spaces_still_validate_quickly(tmp_path: Path) -> None:
    """A 5,000-node chain: the topological order was O(n^2) (list.index per node)."""
    n = 5000
    path = tmp_path / "chain.yaml"
    path.write_text("name: c\ninputs: {x: 3}\nnodes:\n" + "".join(
        f"  n{i}: {{op: conv_1x1, in: {'x' if i == 0 else f'n{i - 1}'}, out: 3}}\n" for i in range(n))
        + f"output: n{n - 1}\n")
    assert list(load_graph(path).nodes)[-1] == f"n{n - 1}"


def test_merge_keys_still_read_after_the_checks(tmp_path: Path) -> None:
    """The checks compose the document once and construct from it: `<<: *anchor` (DLSR's
    space uses it) still merges, and a duplicate key is still found."""
    graph = load_graph(REPO / "spaces" / "dlsr" / "space.yaml")
    assert graph.space.source.where(("nodes",)) is not None and "cell1.m2" in graph.nodes
    path = tmp_path / "dup.yaml"
    path.write_text(_TINY + "output: a\n")
    with pytest.raises(SpaceError, match="duplicate key 'output'"):
        load_graph(path)


# --- sizes: memory, images -------------------------------------------------------------
DLSR = REPO / "spaces" / "dlsr"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DLSR-S's architecture at 4 channels, randomly initialised: small and fast."""
    from tiny_models import tiny_dlsr_s

    return tiny_dlsr_s(tmp_path_factory.mktemp("m"))


def _png(path: Path, w: int, h: int) -> Path:
    from PIL import Image
    import numpy as np

    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
    return path


def _png_header(path: Path, w: int, h: int) -> Path:
    """A PNG that claims w x h pixels in a few hundred bytes (its data is cut short)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_huge_channels_are_refused_before_the_supernet_is_built(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(["search", str(DLSR / "space.yaml"), "--set", "channels=100000", "--out", str(tmp_path / "r")],
                     capsys)
    _one_line_error(code, err, "supernet of space 'dlsr-supernet'", "channels=100000", "NASFLOW_MAX_MEMORY")
    assert not (tmp_path / "r").exists()


def test_the_memory_check_counts_the_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    from nasflow.compile.supernet import compile_graph

    graph = load_graph(DLSR / "dlsr-s.yaml")  # 56,268 weights: 225 KB in float32
    monkeypatch.setenv("NASFLOW_MAX_MEMORY", "0.0001")  # 105 KB
    with pytest.raises(limits.LimitError, match=r"56,268 weights.*needs ~219.8 KB; NASFLOW_MAX_MEMORY allows"):
        compile_graph(graph)
    monkeypatch.setenv("NASFLOW_MAX_MEMORY", "0.001")
    compile_graph(graph)
    monkeypatch.delenv("NASFLOW_MAX_MEMORY")
    proc = _in_child_with_rlimit(  # without the variable: this machine's memory, refused before allocating
        "from nasflow.space.load import load_graph\nfrom nasflow.compile.supernet import compile_graph\n"
        f"g = load_graph({str(DLSR / 'space.yaml')!r}, {{'channels': 100000}})\n"
        "try:\n    compile_graph(g)\nexcept Exception as e:\n    print(type(e).__name__, e)\n", mb=2000)
    assert "LimitError" in proc.stdout and "available" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_a_decompression_bomb_header_is_one_line(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from nasflow.spaces.dlsr.data import image_size

    bomb = _png_header(tmp_path / "bomb.png", 20000, 20000)
    code, err = _cli(["upscale", str(model_dir), str(bomb), "-o", str(tmp_path / "out.png")], capsys)
    _one_line_error(code, err, "bomb.png (20000 x 20000) has 400,000,000 pixels", "NASFLOW_MAX_IMAGE_PIXELS")
    assert not (tmp_path / "out.png").exists()
    monkeypatch.setenv("NASFLOW_MAX_IMAGE_PIXELS", "500000000")  # raised: the header reads (PIL's own check gives way)
    assert image_size(bomb) == (20000, 20000)


@pytest.mark.parametrize("w,h", [(1, 1), (40, 6)])
def test_an_image_smaller_than_the_receptive_field_to_upscale(model_dir: Path, tmp_path: Path, w: int, h: int,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    small = _png(tmp_path / "small.png", w, h)
    code, err = _cli(["upscale", str(model_dir), str(small), "-o", str(tmp_path / "o.png"), "--backend", "eager"], capsys)
    _one_line_error(code, err, f"small.png ({w} x {h})", "at least 15 x 15 pixels")
    assert not (tmp_path / "o.png").exists()


def test_an_image_smaller_than_the_receptive_field_in_a_bench_folder(model_dir: Path, tmp_path: Path) -> None:
    from nasflow.runs.modeldir import load_model
    from nasflow.spaces.dlsr.evaluate import evaluate_folder

    _png(tmp_path / "ok.png", 40, 40)
    _png(tmp_path / "tiny.png", 24, 20)  # LR 12 x 10 at x2
    model, _, _ = load_model(model_dir)
    with pytest.raises(limits.NasflowError, match=r"image 'tiny' .*\(12 x 10, x2\).*at least 15 x 15"):
        evaluate_folder(model, tmp_path, 2, bicubic=False)


def test_profile_at_a_size_the_layers_cannot_take(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(["profile", str(DLSR / "space.yaml"), "--set", "channels=4", "--size", "2x2",
                      "-o", str(tmp_path / "t.json")], capsys)
    _one_line_error(code, err, "--size 2x2 (1 x 1)", "at least 15 x 15", "profile a larger --size")
    assert not (tmp_path / "t.json").exists()
