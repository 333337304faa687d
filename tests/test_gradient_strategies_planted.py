"""darts and milenas pass the checks every strategy of issue 13 passes: the planted op and
edge pair recovered in at least 4 of 5 seeds, and stop + resume equal to an uninterrupted
run (milenas with reuse_forward too, whose arch gradient comes from the weights step)."""
from __future__ import annotations

import pytest
from strategy_checks import assert_resume_is_exact, recovered, recoveries


@pytest.mark.parametrize("name", ["darts", "milenas"])
def test_recovers_the_planted_op_and_edges(tmp_path, name):
    found = recoveries(tmp_path, name)
    assert recovered(found) >= 4, found


@pytest.mark.parametrize("name, options", [("darts", {}), ("milenas", {}), ("milenas", {"reuse_forward": True})])
def test_resume_is_exact(tmp_path, name, options):
    assert assert_resume_is_exact(tmp_path, name, strategy_options=options) == {}  # no state of their own
