"""Warm start: load another model's weights into a model wherever name and shape agree.

The paper trains x3 and x4 from the x2 weights: every tensor is shared except the
upsampler's last conv, whose output channels (3 * scale^2) differ. Loading by name and
shape, and saying what was skipped, covers that and any other near-identical pair.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nasflow.errors import NasflowError
from nasflow.runs.modeldir import load_model


@dataclass
class InitReport:
    source: Path
    loaded: list[str] = field(default_factory=list)  # copied from the source
    skipped: dict[str, str] = field(default_factory=dict)  # source tensor -> why it was not used
    fresh: list[str] = field(default_factory=list)  # the model's tensors left at their initialisation

    def to_json(self) -> dict[str, object]:
        return {"source": str(self.source), "loaded": len(self.loaded), "skipped": self.skipped,
                "fresh": self.fresh}


def warm_start(model: nn.Module, source: str | Path) -> InitReport:
    """Copy into `model` every tensor of the model directory `source` whose name and shape
    match; raise NasflowError if none does (the source is another architecture)."""
    src_model, src_space, _ = load_model(source)
    given = src_model.state_dict()
    own = model.state_dict()
    report = InitReport(Path(source))
    matched: dict[str, torch.Tensor] = {}
    for name, tensor in given.items():
        if name not in own:
            report.skipped[name] = "not in this architecture"
        elif tuple(tensor.shape) != tuple(own[name].shape):
            report.skipped[name] = f"shape {tuple(tensor.shape)}, this architecture has {tuple(own[name].shape)}"
        else:
            matched[name] = tensor
    if not matched:
        raise NasflowError(f"--init-from '{source}': no tensor of model '{src_space.name}' matches this "
                           "architecture by name and shape; warm-start from a model of the same architecture "
                           "(another scale is fine), or train from scratch")
    model.load_state_dict(matched, strict=False)
    report.loaded = list(matched)
    report.fresh = [name for name in own if name not in matched]
    return report
