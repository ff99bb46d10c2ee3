"""Loading the configuration: what is accepted, what wins, and what never shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from cio_sync.errors import ConfigError
from cio_sync.input.config import REGION_URLS, Config, config_from_dict, is_loopback, load_config, normalise_base_url
from cio_sync.input.schema import load_schema, schema_path

from .conftest import API_KEY, SITE_ID, config_dict


def test_a_minimal_file_loads_with_region_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        '{"parallelism": 25, "userId": "id", "mappings": [{"from": "a", "to": "b"}], "siteId": "s", "apiKey": "k"}'
    )
    config = load_config(path, env={})
    assert config.parallelism == 25
    assert config.user_id == "id"
    assert [(m.source, m.target) for m in config.mappings] == [("a", "b")]
    assert config.region == "us"
    assert config.base_url == REGION_URLS["us"]
    assert not config.custom_base_url


def test_eu_region_picks_the_eu_host() -> None:
    config = config_from_dict(config_dict("http://127.0.0.1:1", baseUrl=None, region="eu"), env={})
    assert config.base_url == "https://track-eu.customer.io"


def test_the_environment_wins_over_the_file_and_empty_variables_do_not() -> None:
    env = {"CIO_SITE_ID": "from-env", "CIO_API_KEY": ""}
    config = config_from_dict(config_dict("http://127.0.0.1:1"), env=env)
    assert config.credentials.site_id == "from-env"
    assert config.credentials.api_key == API_KEY


def test_credentials_may_come_from_the_environment_alone() -> None:
    env = {"CIO_SITE_ID": "s", "CIO_API_KEY": "k"}
    config = config_from_dict(config_dict("http://127.0.0.1:1", siteId=None, apiKey=None), env=env)
    assert (config.credentials.site_id, config.credentials.api_key) == ("s", "k")


def test_the_api_key_is_not_in_the_repr() -> None:
    config = config_from_dict(config_dict("http://127.0.0.1:1"), env={})
    assert API_KEY not in repr(config)
    assert API_KEY not in str(config)
    assert SITE_ID in repr(config)


def test_base_url_override_beats_the_file_and_drops_trailing_slash() -> None:
    config = config_from_dict(config_dict("https://proxy.example/cio"), env={}, base_url="http://127.0.0.1:9/")
    assert config.base_url == "http://127.0.0.1:9"
    assert config.custom_base_url


def test_a_proxy_path_prefix_is_kept() -> None:
    assert normalise_base_url("https://proxy.example/cio/") == "https://proxy.example/cio"


def test_a_float_parallelism_with_no_fraction_is_an_integer() -> None:
    config = config_from_dict(config_dict("http://127.0.0.1:1", parallelism=25.0), env={})
    assert config.parallelism == 25
    assert isinstance(config.parallelism, int)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "track.customer.io", "localhost.example", "0.0.0.0"])
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("url", ["http://localhost:8080", "http://[::1]:9/", "https://track.example"])
def test_accepted_base_urls(url: str) -> None:
    assert normalise_base_url(url) == url.rstrip("/")


def test_every_problem_is_listed_at_once() -> None:
    document = config_dict("http://127.0.0.1:1", parallelism=0, userId="", region="mars")
    with pytest.raises(ConfigError) as caught:
        config_from_dict(document, env={})
    message = str(caught.value)
    assert "3 problems" in message
    assert '"parallelism" must be between 1 and 1000, got number 0' in message
    assert '"userId" must not be empty' in message
    assert '"region" must be one of "us", "eu", got string "mars"' in message


def test_config_is_immutable() -> None:
    config = config_from_dict(config_dict("http://127.0.0.1:1"), env={})
    with pytest.raises(AttributeError):
        config.parallelism = 3  # type: ignore[misc]  # the write mypy forbids is the one under test
    assert isinstance(config, Config)


@pytest.mark.parametrize("name", ["config.schema.json", "report.schema.json"])
def test_every_shipped_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    """Checked here rather than on every run (see ``cio_sync.input.schema.validator``)."""
    assert schema_path(name).is_file()
    Draft202012Validator.check_schema(load_schema(name))


@pytest.mark.parametrize(
    "text",
    [
        '{"parallelism": 2, "parallelism": 5, "userId": "id", "mappings": []}',
        '{"parallelism": 2, "userId": "id", "mappings": [{"from": "a", "to": "b", "to": "c"}]}',
    ],
)
def test_a_key_given_twice_is_refused_rather_than_one_of_them_dropped(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={"CIO_SITE_ID": SITE_ID, "CIO_API_KEY": API_KEY})
    assert str(refused.value).endswith("is given twice in one object: keep one of them")
    assert '"parallelism"' in str(refused.value) or '"to"' in str(refused.value)
