"""The columns both progress bars share: the stage, steps/s and the ETA that nasflow.runs.eta
estimates (warm-up steps excluded, phases timed apart, periodic validation counted)."""
from __future__ import annotations

import time

from rich.progress import ProgressColumn, Task, TextColumn
from rich.text import Text

from nasflow.runs.eta import Eta, format_eta


def stage_column() -> TextColumn:
    """The stage the bar belongs to: 'search (warm-up)', 'search' or 'train'."""
    return TextColumn("[bold]{task.fields[stage]}")


class RateColumn(ProgressColumn):
    """Steps per second of the phase running now, as the ETA times it."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        return Text(f"{rate:.1f} steps/s" if rate else "", style="progress.data.speed")


class EtaColumn(ProgressColumn):
    """'ETA m:ss' counting down between steps from the last estimate; '-:--' until steps are
    timed."""

    max_refresh = 1.0

    def render(self, task: Task) -> Text:
        eta, at = task.fields.get("eta"), task.fields.get("eta_at")
        left = None if eta is None or at is None else max(0.0, eta - (time.monotonic() - at))
        return Text(f"ETA {format_eta(left)}", style="progress.remaining")


def eta_fields(eta: Eta) -> dict[str, float | None]:
    """The task fields EtaColumn and RateColumn read."""
    return {"eta": eta.remaining(), "eta_at": time.monotonic(), "rate": eta.rate()}
