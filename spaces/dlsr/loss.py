"""DLSR's reconstruction loss: L1 + mu * HFEN.

HFEN (high-frequency error norm) is the L1 distance between the Laplacian-of-Gaussian (LoG)
responses of the output and the target: it weighs edges and texture, which plain L1
under-weighs. Two forms (SRLoss's `hfen`):

- "padded" (the default, nasflow's since its first release): a 5x5 Gaussian (sigma 1.5)
  per channel, then the 3x3 Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] per channel, each
  kernel divided by its maximum, each convolution zero-padded by k // 2 so the response has
  the input's size (a constant image has a zero response only in the interior, 3 pixels
  from the border).
- "released": exactly what the authors' code computes (DawnHH/DLSR-PyTorch,
  losses/l1_loss.py): the Gaussian normalised to sum 1 and applied per channel without
  padding (the response is 4 pixels smaller), the Laplacian applied with padding 1 to the
  sum over channels, and each image batch's response divided by its maximum over the whole
  batch (unless that is 0). tests/test_step_fidelity.py matches the authors' search step
  with it. The division by the batch's maximum makes the loss depend on the batch's
  brightest edge; "padded" keeps the plain, per-pixel form.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["gaussian_kernel", "laplacian_kernel", "log_filter", "HFENLoss", "hfen_loss", "released_hfen",
           "SRLoss", "HFEN_FORMS"]

HFEN_FORMS = ("padded", "released")


def gaussian_kernel(size: int = 5, sigma: float = 1.5) -> torch.Tensor:
    """A size x size Gaussian divided by its maximum (centre value 1), float32."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma * sigma))
    return (g / g.max()).float()


def laplacian_kernel() -> torch.Tensor:
    """The 4-neighbour 3x3 Laplacian divided by its maximum (which is 1), float32."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    return k / k.max()


def log_filter(x: torch.Tensor, gaussian: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """Gaussian then Laplacian, each per channel with zero padding k // 2 (same size out).

    x is N x C x H x W; the kernels are 1 x 1 x k x k (cast to x's dtype).
    """
    if x.dim() != 4:
        raise ValueError(f"expected N x C x H x W, got shape {tuple(x.shape)}")
    c = x.shape[1]
    # Depthwise (groups=C, the kernel repeated per channel) rather than folding channels into
    # the batch: oneDNN's 1-channel convs are slow, ~10x here forward and backward.
    g = gaussian.to(x.dtype).expand(c, 1, -1, -1)
    lap = laplacian.to(x.dtype).expand(c, 1, -1, -1)
    y = F.conv2d(x, g, padding=g.shape[-1] // 2, groups=c)
    return F.conv2d(y, lap, padding=lap.shape[-1] // 2, groups=c)


class HFENLoss(nn.Module):
    """L1 between LoG(sr) and LoG(hr), mean over all elements. Inputs N x C x H x W.

    The kernels are buffers, so ``.to(device)`` moves them and they are not trained.
    """

    gaussian: torch.Tensor
    laplacian: torch.Tensor

    def __init__(self, size: int = 5, sigma: float = 1.5) -> None:
        super().__init__()
        self.register_buffer("gaussian", gaussian_kernel(size, sigma)[None, None], persistent=False)
        self.register_buffer("laplacian", laplacian_kernel()[None, None], persistent=False)

    def log_filter(self, x: torch.Tensor) -> torch.Tensor:
        """The LoG response of x (N x C x H x W), same shape, each channel filtered alone."""
        return log_filter(x, self.gaussian, self.laplacian)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if sr.shape != hr.shape:
            raise ValueError(f"sr and hr differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
        return F.l1_loss(self.log_filter(sr), self.log_filter(hr))


def hfen_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Functional HFEN (see HFENLoss); the kernels are made on the inputs' device."""
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    g = gaussian_kernel()[None, None].to(sr.device)
    lap = laplacian_kernel()[None, None].to(sr.device)
    return F.l1_loss(log_filter(sr, g, lap), log_filter(hr, g, lap))


def released_log(x: torch.Tensor) -> torch.Tensor:
    """The authors' LoG response of x (N x C x H x W): N x 1 x (H-4) x (W-4), divided by its
    maximum over the batch unless that is 0 (their code's output has N identical channels,
    each this one: the L1 mean over them is the same)."""
    if x.dim() != 4:
        raise ValueError(f"expected N x C x H x W, got shape {tuple(x.shape)}")
    r = torch.arange(5, dtype=torch.float64) - 2.0
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * 1.5 * 1.5))
    g = (g / g.sum()).to(x.dtype).to(x.device).expand(x.shape[1], 1, 5, 5)
    y = F.conv2d(x, g, groups=x.shape[1]).sum(1, keepdim=True)
    y = F.conv2d(y, laplacian_kernel().to(x.dtype).to(x.device)[None, None], padding=1)
    top = y.max()
    return y / top if bool(top != 0) else y


def released_hfen(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """HFEN as the released DLSR code computes it (see the module docstring)."""
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    return F.l1_loss(released_log(hr), released_log(sr))


class SRLoss(nn.Module):
    """L = L1(sr, hr) + mu * HFEN(sr, hr), mu = 0.2 in DLSR (search and retraining).

    ``forward`` returns (total, {"l1": ..., "hfen": ...}); the details are detached scalars
    so each term can be logged by name.
    """

    def __init__(self, mu: float = 0.2, hfen: str = "padded") -> None:
        super().__init__()
        if mu < 0:
            raise ValueError(f"mu must be >= 0, got {mu}")
        if hfen not in HFEN_FORMS:
            raise ValueError(f"hfen must be one of {', '.join(HFEN_FORMS)}, got {hfen!r}")
        self.mu = float(mu)
        self.hfen_form = hfen
        self.hfen = HFENLoss()

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if sr.shape != hr.shape:  # F.l1_loss would broadcast silently
            raise ValueError(f"sr and hr differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
        l1 = F.l1_loss(sr, hr)
        hfen = self.hfen(sr, hr) if self.hfen_form == "padded" else released_hfen(sr, hr)
        total = l1 + self.mu * hfen
        return total, {"l1": l1.detach(), "hfen": hfen.detach()}

    def extra_repr(self) -> str:
        return f"mu={self.mu}" + ("" if self.hfen_form == "padded" else f", hfen={self.hfen_form}")
