"""An honest time-remaining estimate for a run of steps: what the progress bars show.

    eta = Eta([Phase("warm-up", end=160), Phase("search", end=800, cost=3.0)], start=0,
              every=None)
    eta.begin(time.perf_counter())
    ...after each step: eta.tick(step, time.perf_counter(), event=validated_after_it)
    eta.remaining()        # seconds, or None while nothing is timed yet

A naive rate (steps done / time so far) misleads three ways, each handled here:
- the first steps of a run, and of each phase, pay one-off costs (allocator warm-up, kernel
  selection, caches): the first `settle` steps after the start and after a phase change are
  not timed;
- phases differ in step cost (a search's warm-up steps update only the weights; a MiLeNAS
  strategy step does three forward/backward passes): each phase is timed on its own, and a
  phase not yet reached is estimated from a timed one through the phases' declared relative
  costs (a prior, replaced by its own timing once it runs);
- periodic work between steps (validation every `every` steps and after the last one) is
  timed apart from the steps and counted once per occurrence still to come (from its first
  occurrence on: before that its cost is unknown, and left out).
Step times are averaged over the last `window` timed steps of a phase, so the estimate
follows a machine whose load changes.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from statistics import fmean

__all__ = ["Eta", "Phase", "format_eta"]


@dataclass(frozen=True)
class Phase:
    """Steps up to `end` (exclusive, counted from 0 over the whole run) since the previous
    phase's end; `cost`: a step's cost relative to the other phases' (a prior)."""

    name: str
    end: int
    cost: float = 1.0


class Eta:
    def __init__(self, phases: list[Phase], start: int = 0, *, every: int | None = None,
                 settle: int = 3, window: int = 200) -> None:
        if not phases or any(b.end < a.end for a, b in zip(phases, phases[1:])):
            raise ValueError("phases must be given in order, each ending at or after the one before")
        self.phases = [p for i, p in enumerate(phases) if p.end > (phases[i - 1].end if i else 0)]  # no empty ones
        self.total = phases[-1].end
        self.every, self.settle = every, settle
        self.step = start  # steps done
        self.last: float | None = None  # when the last step (or begin) ended
        self.times: dict[str, deque[float]] = {p.name: deque(maxlen=window) for p in self.phases}
        self.untimed = 0  # steps still to skip before timing (after a start or a phase change)
        self.phase_of_last: str | None = None
        self.events: list[float] = []  # extra seconds each periodic occurrence took

    # --- what the run tells it ----------------------------------------------------------------
    def begin(self, now: float) -> None:
        """The run (or its resumed part) starts its first step now."""
        self.last = now
        self.untimed = self.settle
        self.phase_of_last = None

    def tick(self, step: int, now: float, event: bool = False) -> None:
        """`step` steps are done, the last having ended (with any periodic work after it) at
        `now`; `event`: the periodic work ran after this step."""
        if self.last is None:
            self.begin(now)
            self.step = step
            return
        elapsed, self.last = now - self.last, now
        count, self.step = step - self.step, step
        if count <= 0:
            return
        phase = self.phase_at(step - 1).name
        if phase != self.phase_of_last:  # a new phase: its first steps pay one-off costs
            self.untimed = max(self.untimed, self.settle) if self.phase_of_last is not None else self.untimed
            self.phase_of_last = phase
        if self.untimed > 0:
            self.untimed -= count
            return
        per_step = self.step_time(phase)
        if event:
            if per_step is not None:  # what the periodic work added to this step
                self.events.append(max(0.0, elapsed - count * per_step))
            return
        self.times[phase].extend([elapsed / count] * count)

    # --- what it estimates --------------------------------------------------------------------
    def phase_at(self, index: int) -> Phase:
        """The phase of the step with 0-based `index`."""
        for p in self.phases:
            if index < p.end:
                return p
        return self.phases[-1]

    def step_time(self, name: str) -> float | None:
        """Seconds per step of phase `name`: timed, or from a timed phase by the cost priors;
        None while no phase is timed."""
        own = self.times.get(name)
        if own:
            return fmean(own)
        timed = [p for p in self.phases if self.times[p.name]]
        if not timed:
            return None
        # The phase running now if it is timed (the machine's speed now), else the latest timed.
        ref = next((p for p in timed if p.name == self.phase_of_last), timed[-1])
        target = next(p for p in self.phases if p.name == name)
        return fmean(self.times[ref.name]) * target.cost / ref.cost

    def rate(self) -> float | None:
        """Steps per second of the phase the run is in (None until it is timed)."""
        t = self.step_time(self.phase_at(min(self.step, self.total - 1)).name)
        return 1.0 / t if t else None

    def events_left(self) -> int:
        """Periodic occurrences after steps not yet done: every `every`-th, and the last step."""
        if self.every is None or self.step >= self.total:
            return 0
        multiples = self.total // self.every - self.step // self.every
        return multiples + (0 if self.total % self.every == 0 else 1)

    def remaining(self) -> float | None:
        """Seconds to the end of the run; None while no step is timed yet."""
        if self.step >= self.total:
            return 0.0
        seconds = 0.0
        done = self.step
        for p in self.phases:
            if p.end <= done:
                continue
            left = p.end - max(done, self._phase_start(p))
            per_step = self.step_time(p.name)
            if per_step is None:
                return None
            seconds += left * per_step
        if self.events:
            seconds += self.events_left() * fmean(self.events)
        return seconds

    def _phase_start(self, phase: Phase) -> int:
        i = self.phases.index(phase)
        return self.phases[i - 1].end if i else 0


def format_eta(seconds: float | None) -> str:
    """'1:02:03', '4:05', or '-:--' when unknown."""
    if seconds is None:
        return "-:--"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
