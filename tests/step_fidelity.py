"""Shared by the step-fidelity tests and their fixture generators (tests/fixtures/step_fidelity/).

The fixtures hold the references' tensors under the references' own names (fixed by their
pinned commits); how those correspond to nasflow's parameters is written here, once, so a
renaming in nasflow means editing `darts_pairs` / `dlsr_pairs`, not regenerating fixtures.
The initial weights are a function of the reference name and shape (`seeded_weight`), so the
fixtures store only the batch, the arch params and the parameters after the step.
"""
from __future__ import annotations

import subprocess
import zlib
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

FIXTURES = Path(__file__).parent / "fixtures" / "step_fidelity"

# A pair: (reference module prefix, nasflow module prefix, tensor names below them must agree).
Pair = tuple[str, str, bool]

DARTS_PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                    "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
DLSR_PRIMITIVES = ("conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7", "sep_conv_3x3", "sep_conv_5x5",
                   "sep_conv_7x7", "dil_conv_3x3", "dil_conv_5x5")


def seeded_weight(name: str, shape: tuple[int, ...]) -> Tensor:
    """A float32 tensor drawn from a generator seeded by the name's CRC-32: a conv or linear
    weight ~ N(0, 1 / fan_in), a norm layer's scale (a vector named *.weight) 1 + N(0, 0.01),
    any other vector (biases, shifts) N(0, 0.01). Depends on nothing but (name, shape)."""
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if len(shape) > 1:
        fan_in = 1
        for d in shape[1:]:
            fan_in *= d
        return (x / fan_in ** 0.5).float()
    if name.endswith(".weight"):
        return (1.0 + 0.1 * x).float()
    return (0.1 * x).float()


# --- how the references' modules correspond to nasflow's nodes --------------------------------
def darts_edges() -> list[tuple[int, int]]:
    """(node, input) per row of quark0/darts' alphas: nodes 2..5, inputs 0..node-1."""
    return [(k, j) for k in range(2, 6) for j in range(k)]


def darts_pairs(layers: int) -> list[Pair]:
    """quark0/darts' model_search.Network vs space-darts.yaml's supernet."""
    pairs: list[Pair] = [("stem", "stem.op", False), ("classifier", "head.op.linear", True)]
    for i in range(layers):
        pairs += [(f"cells.{i}.preprocess0", f"cell{i}.p0.op", False),
                  (f"cells.{i}.preprocess1", f"cell{i}.p1.op", False)]
        for r, (k, j) in enumerate(darts_edges()):
            pairs += [(f"cells.{i}._ops.{r}._ops.{o}", f"cell{i}.dag.e{k}_{j}.ops.darts_{p}", False)
                      for o, p in enumerate(DARTS_PRIMITIVES)]
    return pairs


def darts_arch_labels() -> dict[str, list[str]]:
    """quark0/darts' alphas_normal / alphas_reduce rows as nasflow's alpha labels."""
    return {f"alphas_{kind}": [f"{kind}_e{k}_{j}" for k, j in darts_edges()] for kind in ("normal", "reduce")}


def dlsr_pairs() -> list[Pair]:
    """DawnHH/DLSR-PyTorch's RFDN_beta1 vs spaces/dlsr/space.yaml's supernet."""
    pairs: list[Pair] = [("fea_conv", "stem.op", True), ("c6.0", "tail_fuse.op", True),
                         ("LR_conv", "tail_conv.op", True), ("upsampler.0", "up_conv.op", True)]
    pairs += [(f"c{j}.0", f"cell{j + 1}_in.op", True) for j in range(2, 6)]
    for i in range(1, 7):
        pairs += [(f"B{i}.c{k}_d", f"cell{i}.d{k}.op", True) for k in range(1, 4)]
        pairs += [(f"B{i}.c{k}_r.layers.{o}", f"cell{i}.m{k}.ops.{p}", False)
                  for k in range(1, 4) for o, p in enumerate(DLSR_PRIMITIVES)]
        pairs += [(f"B{i}.c4", f"cell{i}.r4.op", True), (f"B{i}.c5", f"cell{i}.fuse.op", True),
                  (f"B{i}.esa", f"cell{i}.esa.op", True)]
    return pairs


def dlsr_arch_labels() -> dict[str, str]:
    """DawnHH's alphas rows and betas as nasflow's arch names (alpha.mrbK, beta.cellJ_in)."""
    out = {f"alphas.{r}": f"arch.alpha.mrb{r + 1}" for r in range(3)}
    out.update({f"betas.{j}": f"arch.beta.cell{j + 3}_in" for j in range(4)})
    return out


def name_map(ref: Iterable[tuple[str, int]], ours: dict[str, tuple[int, ...]], pairs: list[Pair]) -> dict[str, str]:
    """Reference name -> nasflow name for every (name, numel) of `ref` (in the reference's
    order), from `ours` (nasflow's names and shapes, in its order): within each pair of
    modules the tensors correspond in order, the sizes must agree and, where the pair says
    so, the names below the prefixes too. Every tensor on both sides is mapped once."""
    ref = list(ref)
    out: dict[str, str] = {}
    for rp, op, same_names in pairs:
        rs = [(n, size) for n, size in ref if n.startswith(rp + ".")]
        os_ = [n for n in ours if n.startswith(op + ".")]
        assert len(rs) == len(os_), f"{rp} has {len(rs)} tensors, nasflow's {op} {len(os_)}"
        for (r, size), o in zip(rs, os_):
            numel = 1
            for d in ours[o]:
                numel *= d
            assert size == numel, f"{r} ({size}) vs {o} {ours[o]}"
            assert not same_names or r[len(rp):] == o[len(op):], (r, o)
            out[r] = o
    assert len(out) == len(ref), f"unmapped reference tensors: {[n for n, _ in ref if n not in out][:5]}"
    assert sorted(out.values()) == sorted(ours), f"unmapped nasflow tensors: {sorted(set(ours) - set(out.values()))[:5]}"
    return out


# --- the fixtures' packing: one flat vector per group, names compressed ------------------------
def pack(tensors: dict[str, Tensor], what: str) -> dict[str, Tensor]:
    """Many small tensors (in the reference's order) as one flat float32 vector, their names
    as zlib-compressed text (a header of thousands of names would outweigh the data) and
    their sizes."""
    names = list(tensors)
    return {f"after.{what}": torch.cat([t.detach().reshape(-1) for t in tensors.values()]).float(),
            f"ref.{what}.names": torch.frombuffer(bytearray(zlib.compress("\n".join(names).encode(), 9)),
                                                  dtype=torch.uint8),
            f"ref.{what}.sizes": torch.tensor([t.numel() for t in tensors.values()], dtype=torch.int32)}


def unpack(fx: dict[str, Tensor], what: str) -> dict[str, Tensor]:
    """pack's inverse: reference name -> flat tensor (shapes are nasflow's to give)."""
    names, sizes = zip(*ref_sizes(fx, what))
    return dict(zip(names, fx[f"after.{what}"].split(list(sizes))))


def ref_sizes(fx: dict[str, Tensor], what: str) -> list[tuple[str, int]]:
    names = zlib.decompress(bytes(fx[f"ref.{what}.names"].tolist())).decode().split("\n")
    return list(zip(names, fx[f"ref.{what}.sizes"].tolist()))


def save_fixture(tensors: dict[str, Tensor], out: str, ref_dir: str | Path, meta: dict[str, str]) -> None:
    """Write a generator's fixture with the reference checkout's commit, the torch version and
    the dtype convention in its metadata (what the tests' failure messages name)."""
    from safetensors.torch import save_file

    commit = subprocess.run(["git", "-C", str(ref_dir), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    meta = {**meta, "commit": commit, "torch": torch.__version__, "dtype": "float64 (stored as float32)"}
    save_file({k: v.contiguous() for k, v in tensors.items()}, out, metadata=meta)
    print(f"wrote {out}: {len(tensors)} tensors, reference {commit}")


def max_differences(got: dict[str, Tensor], want: dict[str, Tensor]) -> dict[str, float]:
    """max |got - want| per name of `want`; every name must be in `got` with as many elements."""
    missing = sorted(set(want) - set(got))
    assert not missing, f"not in nasflow's model: {missing[:5]}"
    out = {}
    for name, w in want.items():
        g = got[name]
        assert g.numel() == w.numel(), f"{name}: {tuple(g.shape)} vs the reference's {tuple(w.shape)}"
        out[name] = float((g.double().reshape(-1) - w.double().reshape(-1)).abs().max()) if w.numel() else 0.0
    return out
