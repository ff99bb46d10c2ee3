"""The randomized model test: seeded scenarios of faults, kills and re-runs must converge on the file.

Each seed is one scenario (see ``tests/model.py``); ``make soak`` plays many more.
"""

from __future__ import annotations

import pytest

from .model import Tally, play

# Enough seeds for about a minute of the suite on two cores; `make soak` runs as many as time allows.
SEEDS = range(12)


@pytest.mark.long
@pytest.mark.parametrize("seed", SEEDS)
def test_a_scenario_converges_on_the_file(seed: int) -> None:
    tally = Tally()
    play(seed, tally)
    assert tally.scenarios == 1
