"""cio_sync as a Python library: the same behaviour as the command, through public names only."""

from __future__ import annotations

from pathlib import Path

import pytest

import cio_sync
from cio_sync.emulator import Emulator

from .conftest import API_KEY, SITE_ID


def test_every_public_name_exists() -> None:
    for name in cio_sync.__all__:
        assert hasattr(cio_sync, name), name


def test_a_sync_driven_from_python(emulator: Emulator) -> None:
    config = cio_sync.config_from_dict(
        {
            "parallelism": 3,
            "userId": "email",
            "mappings": [{"from": "first", "to": "first_name"}],
            "baseUrl": emulator.url,
        },
        env={"CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY},
    )
    outcomes: list[cio_sync.RecordOutcome] = []
    result = cio_sync.sync(
        config,
        iter([{"email": "ada@example.com", "first": "Ada"}, {"first": "nobody"}]),
        on_outcome=outcomes.append,
        http=cio_sync.HttpSettings(retries=1, backoff_factor=0),
    )
    assert isinstance(result, cio_sync.SyncResult)
    assert (result.total, result.synced, result.invalid) == (2, 1, 1)
    assert not result.ok
    assert sorted((o.index, o.status) for o in outcomes) == [(0, cio_sync.Status.SYNCED), (1, cio_sync.Status.INVALID)]


@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_a_caller_may_hear_only_of_the_records_not_synced(emulator: Emulator, tmp_path: Path, transport: str) -> None:
    config = cio_sync.config_from_dict(
        {"parallelism": 2, "userId": "id", "mappings": [], "baseUrl": emulator.url, "transport": transport},
        env={"CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY},
    )
    records = [{"id": f"p{n}"} for n in range(40)] + [{"id": ""}]
    ledger = cio_sync.Ledger(str(tmp_path / "state.db"), config)
    heard: list[cio_sync.RecordOutcome] = []
    first = cio_sync.sync(config, records, ledger=ledger, on_outcome=heard.append, only_problems=True)
    again = cio_sync.sync(config, records, ledger=ledger, on_outcome=heard.append, only_problems=True)
    ledger.close()
    assert (first.synced, first.invalid, again.unchanged, again.invalid) == (40, 1, 40, 1)
    assert [(o.index, o.status) for o in heard] == [(40, cio_sync.Status.INVALID)] * 2


def test_library_errors_carry_exit_codes() -> None:
    with pytest.raises(cio_sync.ConfigError, match='missing required key "userId"') as caught:
        cio_sync.config_from_dict({"parallelism": 1}, env={})
    assert isinstance(caught.value, cio_sync.CioSyncError)
    assert caught.value.exit_code == cio_sync.ExitCode.BAD_INPUT


def test_the_ledger_and_the_plan_from_python(emulator: Emulator, tmp_path: Path) -> None:
    records = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]
    config = cio_sync.config_from_dict(
        {"parallelism": 2, "userId": "id", "mappings": [{"from": "name", "to": "name"}], "baseUrl": emulator.url},
        env={"CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY},
    )
    ledger = cio_sync.Ledger(str(tmp_path / "state.db"), config)
    first = cio_sync.sync(config, records, ledger=ledger)
    second = cio_sync.sync(config, records, ledger=ledger)
    ahead = cio_sync.plan(config, [*records, {"id": 3}], ledger=ledger)
    ledger.close()
    assert (first.synced, second.synced, second.unchanged) == (2, 0, 2)
    assert second.ok
    assert (ahead.new, ahead.changed, ahead.unchanged) == (1, 0, 2)
