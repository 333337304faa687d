"""The progress bars' ETA (nasflow.runs.eta) on synthetic step times, and the stage the bars
show. No real run is timed here: every clock is made up."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

from nasflow.runs.eta import Eta, Phase, format_eta


def _run(eta: Eta, durations: list[float], start_step: int = 0, t0: float = 100.0,
         events: dict[int, float] | None = None) -> float:
    """Feed `eta` steps taking `durations` seconds (plus `events[step]` after step `step`)."""
    now = t0
    eta.begin(now)
    for i, d in enumerate(durations):
        step = start_step + i + 1
        extra = (events or {}).get(step, 0.0)
        now += d + extra
        eta.tick(step, now, event=step in (events or {}))
    return now


def test_unknown_until_a_step_is_timed_and_zero_at_the_end() -> None:
    eta = Eta([Phase("train", 10)])
    assert eta.remaining() is None and eta.rate() is None
    _run(eta, [5.0, 5.0])  # inside the settling steps: still nothing timed
    assert eta.remaining() is None
    _run(eta, [0.5] * 8, start_step=2)
    assert eta.remaining() == 0.0


def test_the_first_steps_warm_up_cost_is_left_out_of_the_rate() -> None:
    eta = Eta([Phase("train", 100)], settle=3)
    _run(eta, [4.0, 2.0, 1.0] + [0.1] * 17)  # compile / allocator warm-up, then steady
    assert eta.remaining() == pytest.approx(80 * 0.1)
    naive = 20 / (4.0 + 2.0 + 1.0 + 17 * 0.1)  # steps / elapsed: what a plain rate says
    assert 80 / naive > 4 * eta.remaining()
    assert eta.rate() == pytest.approx(10.0)


def test_a_phase_not_reached_yet_is_priced_by_its_cost_relative_to_the_timed_one() -> None:
    phases = [Phase("warm-up", 50), Phase("search", 100, cost=3.0)]
    eta = Eta(phases, settle=2)
    _run(eta, [1.0, 1.0] + [0.1] * 28)  # 30 warm-up steps done
    assert eta.remaining() == pytest.approx(20 * 0.1 + 50 * 0.3)
    # The strategy steps turn out to cost 2.5x, not 3x: once timed (after their own settling
    # steps) their own time replaces the prior.
    _run(eta, [0.1] * 20 + [0.9, 0.9] + [0.25] * 18, start_step=30, t0=200.0)
    assert eta.step == 70
    assert eta.remaining() == pytest.approx(30 * 0.25)
    assert eta.rate() == pytest.approx(4.0)


def test_a_resumed_run_in_a_later_phase_prices_the_rest_from_its_own_steps() -> None:
    eta = Eta([Phase("warm-up", 50), Phase("search", 100, cost=3.0)], start=60, settle=1)
    _run(eta, [2.0] + [0.2] * 9, start_step=60)
    assert eta.remaining() == pytest.approx(30 * 0.2)


def test_periodic_validation_is_timed_apart_and_counted_for_each_one_to_come() -> None:
    eta = Eta([Phase("train", 35)], every=10, settle=1)
    _run(eta, [1.0] + [0.1] * 11, events={10: 2.0})  # 12 steps, one validation after step 10
    assert eta.events_left() == 3  # after steps 20, 30 and the last (35)
    assert eta.remaining() == pytest.approx(23 * 0.1 + 3 * 2.0)
    # the validation's time is not mistaken for slow steps
    assert eta.step_time("train") == pytest.approx(0.1)


@pytest.mark.parametrize(("step", "total", "every", "left"), [
    (0, 30, 10, 3), (10, 30, 10, 2), (29, 30, 10, 1), (30, 30, 10, 0), (0, 35, 10, 4), (31, 35, 10, 1)])
def test_events_left(step: int, total: int, every: int, left: int) -> None:
    eta = Eta([Phase("train", total)], start=step, every=every)
    assert eta.events_left() == left


def test_the_rate_follows_a_machine_whose_load_changes() -> None:
    eta = Eta([Phase("train", 1000)], settle=0, window=50)
    _run(eta, [0.1] * 100 + [0.4] * 60)
    assert eta.step_time("train") == pytest.approx(0.4)


def test_phases_must_come_in_order_and_empty_ones_are_dropped() -> None:
    with pytest.raises(ValueError, match="in order"):
        Eta([Phase("search", 100), Phase("warm-up", 50)])
    eta = Eta([Phase("warm-up", 0), Phase("search", 10, cost=3.0)], settle=0)
    _run(eta, [0.3] * 4)
    assert [p.name for p in eta.phases] == ["search"] and eta.remaining() == pytest.approx(6 * 0.3)


def test_format_eta() -> None:
    assert format_eta(None) == "-:--"
    assert format_eta(65.4) == "1:05"
    assert format_eta(3725) == "1:02:05"


# --- the stage the bars show ------------------------------------------------------------------
def _shown(reporter: object) -> str:
    console = Console(record=True, width=160, color_system=None)
    progress = reporter.progress  # type: ignore[attr-defined]
    console.print(progress.make_tasks_table(progress.tasks))
    return console.export_text()


def test_the_search_bar_names_its_stage_and_phase_and_prices_strategy_steps() -> None:
    from nasflow.cli.search_view import RichReporter

    reporter = RichReporter(Console(file=io.StringIO(), force_terminal=False), step_cost=3.0)
    reporter.start(0, 20, 5)
    try:
        assert _shown(reporter).lstrip().startswith("search (warm-up)")
        for step in range(1, 8):
            reporter.update(step, {"train/loss": 1.0}, None)
        shown = _shown(reporter)
        assert shown.lstrip().startswith("search ") and "warm-up" not in shown and "7/20" in shown
        assert "ETA" in shown and reporter.eta is not None and reporter.eta.phases[1].cost == 3.0
    finally:
        reporter.stop()


def test_the_train_bar_names_its_stage_and_prices_validation() -> None:
    from nasflow.cli.train_view import TrainReporter

    reporter = TrainReporter(Console(file=io.StringIO(), force_terminal=False), validate_every=4)
    reporter.start(0, 12)
    try:
        assert _shown(reporter).lstrip().startswith("train")
        for step in range(1, 9):  # validations after steps 4 and 8
            reporter.update(step, {"train/loss": 1.0}, {"psnr": 30.0} if step % 4 == 0 else None)
        assert reporter.eta is not None and reporter.eta.every == 4 and reporter.eta.events_left() == 1
        # the one after step 8 is timed apart (the one after step 4 fell in the settling steps)
        assert len(reporter.eta.events) == 1 and "valid @ 8" in reporter.progress.status
    finally:
        reporter.stop()
