"""The DLSR loss: L1 + mu * HFEN, HFEN padded (the default) or as the released code computes it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nasflow.spaces.dlsr.data import load_rgb
from nasflow.spaces.dlsr.images import to_tensor
from nasflow.spaces.dlsr.loss import HFENLoss, SRLoss, gaussian_kernel, hfen_loss, laplacian_kernel


@pytest.fixture(scope="module")
def crop(shared_dir: Path) -> torch.Tensor:
    """A 1 x 3 x 48 x 48 float64 crop of a real image (edges and texture), 0..255."""
    img = load_rgb(shared_dir / "datasets" / "Set5" / "butterfly.png")[100:148, 60:108]
    return to_tensor(img)[None].double()


def test_kernels_as_released() -> None:
    g = gaussian_kernel()
    assert g.shape == (5, 5) and g.max() == 1.0 and g[2, 2] == 1.0
    assert torch.allclose(g, g.t()) and torch.allclose(g, g.flip(0))
    assert g[2, 0].item() == pytest.approx(torch.exp(torch.tensor(-4 / 4.5)).item())
    assert laplacian_kernel().tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]


def test_zero_for_identical_images(crop: torch.Tensor) -> None:
    assert hfen_loss(crop, crop).item() == 0.0
    total, parts = SRLoss()(crop, crop)
    assert total.item() == 0.0 and parts["l1"].item() == 0.0 and parts["hfen"].item() == 0.0


def test_positive_and_differentiable(crop: torch.Tensor) -> None:
    sr = (crop + 3.0 * torch.randn_like(crop, generator=torch.Generator().manual_seed(0))).requires_grad_()
    total, parts = SRLoss(mu=0.2)(sr, crop)
    assert parts["hfen"].item() > 0 and parts["l1"].item() > 0
    assert total.item() == pytest.approx(parts["l1"].item() + 0.2 * parts["hfen"].item())
    assert not parts["l1"].requires_grad and not parts["hfen"].requires_grad
    total.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_hfen_ignores_a_constant_offset_l1_does_not(crop: torch.Tensor) -> None:
    hfen = HFENLoss().double()
    shifted = crop + 10.0
    # Zero padding makes the border respond to the offset; 3 pixels in (2 + 1 kernel radii)
    # a constant has no Laplacian.
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    d = hfen.log_filter(shifted)[inner] - hfen.log_filter(crop)[inner]
    assert d.abs().max().item() < 1e-9
    assert hfen.log_filter(crop)[inner].abs().max().item() > 10  # the crop has real edges
    assert torch.nn.functional.l1_loss(shifted, crop).item() == pytest.approx(10.0)


def test_module_matches_functional_and_moves_with_to(crop: torch.Tensor) -> None:
    sr = crop.flip(-1)
    module = HFENLoss().to(torch.float64)
    assert module.gaussian.dtype == torch.float64
    assert module(sr, crop).item() == pytest.approx(hfen_loss(sr, crop).item(), rel=1e-12)
    assert module(sr.float(), crop.float()).item() == pytest.approx(hfen_loss(sr, crop).item(), rel=1e-4)
    # Each channel is filtered alone: the loss of one channel does not see the others.
    one = hfen_loss(sr[:, :1], crop[:, :1])
    per_channel = [hfen_loss(sr[:, c : c + 1], crop[:, c : c + 1]) for c in range(3)]
    assert hfen_loss(sr, crop).item() == pytest.approx(torch.stack(per_channel).mean().item())
    assert one.item() == pytest.approx(per_channel[0].item())
    # The kernels are fixed: no trainable parameters, nothing added to a model's state_dict.
    assert list(SRLoss().parameters()) == [] and SRLoss().state_dict() == {}


def test_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        SRLoss()(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="N x C x H x W"):
        HFENLoss().log_filter(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="mu"):
        SRLoss(mu=-1.0)


def test_released_hfen_form() -> None:
    """The authors' HFEN (hfen="released"): each response divided by its batch maximum, so
    scaling both images leaves it unchanged (the padded form scales with them).
    tests/test_step_fidelity.py checks it against their search step."""
    from nasflow.errors import NasflowError
    from nasflow.spaces.dlsr.loss import released_hfen
    from nasflow.spaces.dlsr.task import SRTask

    g = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64), torch.rand(2, 3, 16, 16, generator=g,
                                                                                       dtype=torch.float64)
    assert released_hfen(3 * sr, 3 * hr).item() == pytest.approx(released_hfen(sr, hr).item(), rel=1e-12)
    assert hfen_loss(3 * sr, 3 * hr).item() == pytest.approx(3 * hfen_loss(sr, hr).item(), rel=1e-12)
    total, parts = SRLoss(0.2, hfen="released")(sr, hr)
    assert parts["hfen"].item() == released_hfen(sr, hr).item()
    assert total.item() == pytest.approx((parts["l1"] + 0.2 * parts["hfen"]).item())
    with pytest.raises(ValueError, match="hfen must be one of padded, released"):
        SRLoss(hfen="log")
    with pytest.raises(NasflowError, match="sr task option hfen must be one of padded, released"):
        SRTask(hfen="log", cache="none", workers=0, space_params={"scale": 2})
