"""Proxy variables never carry the API key in clear text: loopback never goes through a proxy, and
https only through a CONNECT tunnel."""

from __future__ import annotations

import pytest

from cio_sync.emulator import Emulator

from .conftest import API_KEY, SITE_ID, Files, config_dict, people_puts, run_cli
from .hostile import hostile, refuse_connect

DATA = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY"])
def test_loopback_is_never_reached_through_a_proxy(
    emulator: Emulator, files: Files, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    with hostile(refuse_connect(), honest_check=False) as proxy:
        monkeypatch.setenv(variable, proxy.url)
        run = run_cli(["--config", files.config(config_dict(emulator.url)), "--data", files.data(DATA)])
        assert proxy.requests() == []
    assert run.code == 0, run.stderr
    assert sorted(people_puts(emulator), key=str) == ["1", "2"]


def test_https_goes_through_a_proxy_only_by_connect(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    with hostile(refuse_connect(), honest_check=False) as proxy:
        for variable in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(variable, proxy.url)
        config = files.config(config_dict("https://track.example.invalid"))
        run = run_cli(["--config", config, "--data", files.data(DATA), "--retries", "0"])
        received = proxy.requests()
    assert run.code == 4, run.stderr
    assert received, "the https request never reached the proxy"
    for request in received:
        assert request.startswith(b"CONNECT track.example.invalid:443 HTTP/1.")
        assert b"authorization" not in request.lower()
        assert API_KEY.encode() not in request
        assert SITE_ID.encode() not in request


def test_no_proxy_is_honoured_for_https(files: Files, monkeypatch: pytest.MonkeyPatch) -> None:
    with hostile(refuse_connect(), honest_check=False) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.invalid")
        config = files.config(config_dict("https://track.example.invalid"))
        run = run_cli(["--config", config, "--data", files.data(DATA), "--retries", "0"])
        assert proxy.requests() == []
    assert run.code == 4, run.stderr
