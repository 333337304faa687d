"""docs/strategies.md names every strategy nasflow ships (a section each) and each option."""
from __future__ import annotations

import re
from pathlib import Path

from nasflow.strategies import STRATEGIES, strategy_catalog

PAGE = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"


def test_every_strategy_and_option_is_documented():
    text = PAGE.read_text()
    sections = dict(re.findall(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M))
    shipped = [info for info in strategy_catalog()  # not those the tests register
               if STRATEGIES.get(info.name).__module__.startswith("nasflow.strategies.")]
    assert len(shipped) >= 3
    for info in shipped:
        assert info.name in sections, f"docs/strategies.md has no section '## {info.name}'"
        assert f"| `{info.name}` |" in text, f"{info.name} is missing from the table"
        for option, _, default, _ in info.options:
            assert f"`{option}`" in sections[info.name], f"{info.name}: option {option} undocumented"
    assert set(sections) <= set(STRATEGIES.names()), "a section names no registered strategy"
