"""cio_sync as a Python library: the same behaviour as the command, through public names only."""

from __future__ import annotations

import pytest

import cio_sync

from .conftest import API_KEY, SITE_ID


def test_every_public_name_exists() -> None:
    for name in cio_sync.__all__:
        assert hasattr(cio_sync, name), name


def test_a_sync_driven_from_python() -> None:
    with cio_sync_emulator() as emulator:
        url = emulator.url
        config = cio_sync.config_from_dict(
            {
                "parallelism": 3,
                "userId": "email",
                "mappings": [{"from": "first", "to": "first_name"}],
                "baseUrl": url,
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


def test_library_errors_carry_exit_codes() -> None:
    with pytest.raises(cio_sync.ConfigError, match='missing required key "userId"') as caught:
        cio_sync.config_from_dict({"parallelism": 1}, env={})
    assert isinstance(caught.value, cio_sync.CioSyncError)
    assert caught.value.exit_code == cio_sync.ExitCode.BAD_INPUT


def cio_sync_emulator() -> cio_sync.emulator.Emulator:
    from cio_sync.emulator import Emulator

    return Emulator(SITE_ID, API_KEY)
