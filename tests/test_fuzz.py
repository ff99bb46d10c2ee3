"""A bounded fuzz run in every ``make test``: random files, configurations and server answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from .fuzz import DOCUMENTED, run_case


@pytest.mark.parametrize("seed", range(24))
def test_fuzzed_inputs_and_answers_end_with_a_documented_exit(seed: int, tmp_path: Path) -> None:
    assert run_case(seed, tmp_path) in DOCUMENTED
