"""Loading the configuration: the file, the environment's credentials and the overrides."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from enum import Enum
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .convert import CASTS, Cast, CastError
from .schema import problems

REGION_URLS = {
    "us": "https://track.customer.io",
    "eu": "https://track-eu.customer.io",
}
SITE_ID_ENV = "CIO_SITE_ID"
API_KEY_ENV = "CIO_API_KEY"
# The App API (the read side, for `cio-sync verify`): its own hosts and its own bearer key.
APP_REGION_URLS = {
    "us": "https://api.customer.io",
    "eu": "https://api-eu.customer.io",
}
APP_API_KEY_ENV = "CIO_APP_API_KEY"
# The Track API refuses attribute names longer than this (in UTF-8 bytes), and more attributes
# than this in one request.
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTES = 300
# The attribute that makes an identify call update-only.
UPDATE_ONLY = "_update"


class Transport(str, Enum):
    """How people are sent."""

    # A PUT /api/v1/customers/{id} per person.
    V1 = "v1"
    # POST /api/v2/batch with many people a request.
    BATCH = "batch"


class Mode(str, Enum):
    """Whether people who do not exist yet are created."""

    UPSERT = "upsert"
    # Adds "_update": true: existing people are changed, none created.
    UPDATE = "update"


# Where a value sits in a record: a top-level key, or a path of keys and 0-based array positions.
RecordPath = str | tuple[str | int, ...]


class IdType(str, Enum):
    """What the ``userId`` value names; both transports reach the same person for each."""

    # Guessed from the value's shape, as the v1 path is read: "@" is an email, "cio_..." a cio_id.
    AUTO = "auto"
    ID = "id"
    EMAIL = "email"
    CIO_ID = "cio_id"


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Set the person attribute ``target`` from ``record`` at ``source`` (a key or a path), or,
    when ``source`` is None, to the constant ``value``; ``cast`` converts it first.

    ``skip_null``: True leaves a null out of the body; False sends it (an empty CSV cell too);
    None is the default: a JSON null is sent, an empty CSV cell is not.
    """

    source: RecordPath | None
    target: str
    value: object = None
    cast: Cast | None = None
    skip_null: bool | None = None

    def shape(self) -> object:
        """Everything that shapes what this mapping sends, as JSON (for the ledger's fingerprint)."""
        if isinstance(self.source, str) and self.cast is None and self.skip_null is None:
            return [self.source, self.target]  # the plain form: the same fingerprint as ever
        return {
            "from": self.source,
            "value": self.value if self.source is None else None,
            "to": self.target,
            "as": self.cast.value if self.cast else None,
            "skipNull": self.skip_null,
        }


@dataclass(frozen=True, slots=True)
class MaxInvalid:
    """How many invalid records a run may have and still succeed (``maxInvalid``, ``--max-invalid``):
    ``count`` records, or ``percent`` of the records read."""

    count: int | None = None
    percent: Fraction | None = None

    def allows(self, invalid: int, total: int) -> bool:
        """True when ``invalid`` records of ``total`` read are within the tolerance."""
        if self.count is not None:
            return invalid <= self.count
        assert self.percent is not None
        # Exact arithmetic: 2% of 50 records allows exactly 1, not 0.99999... or 1.00001.
        return invalid * 100 <= self.percent * total

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return percent_text(self.percent or Fraction(0))


def percent_text(percent: Fraction) -> str:
    """``percent`` as ``"N%"`` in plain decimals, exactly, as the option parsers read it back.

    Float formatting would write a tiny share as ``1e-05%``, which they refuse. A share is parsed
    from decimal text, so its denominator is ``2**a * 5**b`` and its expansion ends within
    ``max(a, b)`` (under 3.33 per digit of the denominator) places: the precision below holds it all.
    """
    with localcontext() as context:
        context.prec = len(str(percent.numerator)) + 4 * len(str(percent.denominator))
        value = Decimal(percent.numerator) / Decimal(percent.denominator)
        return f"{value.normalize():f}%"


_PERCENT = re.compile(r"(100(?:\.0+)?|[0-9]{1,2}(?:\.[0-9]+)?)%", re.ASCII)


def parse_max_invalid(value: object) -> MaxInvalid:
    """``N`` (a count of records) or ``"N%"`` (0 to 100, a share of the records read) as a
    :class:`MaxInvalid`. Raises ValueError saying what it must be."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return MaxInvalid(count=value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[0-9]+", text, re.ASCII):
            return MaxInvalid(count=int(text))
        matched = _PERCENT.fullmatch(text)
        if matched is not None:
            return MaxInvalid(percent=Fraction(matched.group(1)))
    raise ValueError(
        "must be a number of records (an integer, 0 or more) or a share of the records read "
        f'("0%" to "100%", such as "2%" or "0.5%"), got {value!r}'
    )


class WhenRemoved(str, Enum):
    """What becomes of a person the ledger holds who left the data file (``whenRemoved``)."""

    # Nothing: the person stays as they are (as before mirroring existed).
    KEEP = "keep"
    # The person stays; every attribute the mapping writes is removed.
    CLEAR = "clear"
    # The person is deleted and their identifier blocked from being added again.
    SUPPRESS = "suppress"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class MaxRemovals:
    """The most people one run may remove (``maxRemovals``, ``--max-removals``): ``count`` people,
    ``percent`` of the people the ledger holds, or any number (``everyone``)."""

    count: int | None = None
    percent: Fraction | None = None
    everyone: bool = False

    def allows(self, removals: int, held: int) -> bool:
        """True when removing ``removals`` of the ``held`` people the ledger holds is within the guard."""
        if self.everyone:
            return True
        if self.count is not None:
            return removals <= self.count
        assert self.percent is not None
        # Exact arithmetic, as for maxInvalid: 10% of 30 people allows exactly 3.
        return removals * 100 <= self.percent * held

    def __str__(self) -> str:
        if self.everyone:
            return "all"
        if self.count is not None:
            return str(self.count)
        return percent_text(self.percent or Fraction(0))


DEFAULT_MAX_REMOVALS = MaxRemovals(percent=Fraction(10))


def parse_max_removals(value: object) -> MaxRemovals:
    """``N`` (people), ``"N%"`` (0 to 100, of the people the ledger holds) or ``"all"`` as a
    :class:`MaxRemovals`. Raises ValueError saying what it must be."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return MaxRemovals(everyone=True)
    try:
        parsed = parse_max_invalid(value)
    except ValueError:
        raise ValueError(
            "must be a number of people (an integer, 0 or more), a share of the people the ledger "
            f'holds ("0%" to "100%", such as "10%"), or "all", got {value!r}'
        ) from None
    return MaxRemovals(count=parsed.count, percent=parsed.percent)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Track API credentials; the key is kept out of ``repr`` so it cannot reach a log."""

    site_id: str
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Config:
    """A validated configuration: everything a sync needs to know besides the records."""

    parallelism: int
    user_id: RecordPath
    mappings: tuple[FieldMapping, ...]
    credentials: Credentials
    region: str = "us"
    base_url: str = REGION_URLS["us"]
    # True when base_url came from baseUrl or --base-url rather than from region.
    custom_base_url: bool = False
    # Requests per second for all workers together; None for no cap.
    rate_limit: float | None = None
    transport: Transport = Transport.V1
    mode: Mode = Mode.UPSERT
    id_type: IdType = IdType.AUTO
    # The App API key (appApiKey, or CIO_APP_API_KEY, which wins); only `verify` needs it.
    app_api_key: str | None = field(default=None, repr=False)
    # The App API's URL: from region, or appBaseUrl / --app-base-url.
    app_base_url: str = APP_REGION_URLS["us"]
    # The invalid records a run may have and still exit 0; None: none.
    max_invalid: MaxInvalid | None = None
    # What becomes of the people who left the data file, and how many one run may remove.
    when_removed: WhenRemoved = WhenRemoved.KEEP
    max_removals: MaxRemovals = DEFAULT_MAX_REMOVALS

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """Every credential, to be masked in any text shown: the site id and key first (the
        pair a Track API request carries together), then the App API key."""
        return (self.credentials.site_id, self.credentials.api_key, self.app_api_key)


# No configuration comes close to this; it keeps a path such as /dev/zero from filling memory.
MAX_CONFIG_BYTES = 1_000_000


def load_config(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    base_url: str | None = None,
    rate_limit: float | None = None,
    transport: Transport | str | None = None,
    mode: Mode | str | None = None,
    app_base_url: str | None = None,
    track_credentials: bool = True,
) -> Config:
    """Read, validate and resolve the configuration file at ``path`` (see :func:`config_from_dict`).

    ``env`` supplies the ``CIO_`` credentials (``os.environ`` when omitted). Raises
    :class:`ConfigError` naming the file, the key and the problem.
    """
    name = str(path)
    try:
        with Path(path).open("rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, not a configuration file") from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read the configuration file: {e.strerror}") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: is larger than {MAX_CONFIG_BYTES:,} bytes, which no configuration needs")
    document = _parsed(text, name)
    return config_from_dict(
        document,
        env=env,
        base_url=base_url,
        rate_limit=rate_limit,
        transport=transport,
        mode=mode,
        source=name,
        app_base_url=app_base_url,
        track_credentials=track_credentials,
    )


def _parsed(text: bytes, name: str) -> object:
    """The configuration file's ``text`` as JSON; raises :class:`ConfigError` naming ``name``."""
    try:
        document = json.loads(text, parse_constant=_not_json, object_pairs_hook=_unique_keys)
        # A lone surrogate escape ("\ud800") is half a character: no name or key can hold one.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeError:
        raise ConfigError(f"{name}: is not UTF-8 text, or holds a lone surrogate escape such as \\ud800") from None
    except _RepeatedKey as e:
        raise ConfigError(f"{name}: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{name}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise ConfigError(f"{name}: not valid JSON: {e}") from None
    return document


def config_from_dict(
    document: object,
    *,
    env: Mapping[str, str] | None = None,
    base_url: str | None = None,
    rate_limit: float | None = None,
    transport: Transport | str | None = None,
    mode: Mode | str | None = None,
    source: str = "configuration",
    app_base_url: str | None = None,
    track_credentials: bool = True,
) -> Config:
    """Validate a parsed configuration (the file's JSON) and resolve credentials and URLs.

    ``base_url`` and ``app_base_url`` override ``region`` and ``baseUrl``/``appBaseUrl``;
    ``rate_limit``, ``transport`` and ``mode`` their keys. ``track_credentials=False`` (for reading
    back, which never writes) lets the Track API's site id and key be absent.
    """
    _check_url_options(base_url, app_base_url)
    found = problems("config.schema.json", document)
    if found:
        raise ConfigError(listing(source, found))
    assert isinstance(document, dict)
    mappings = tuple(_field_mapping(m) for m in document["mappings"])
    chosen_mode = Mode(mode or document.get("mode", Mode.UPSERT))
    found = _mapping_problems(mappings, chosen_mode)
    region = str(document.get("region", "us"))
    environment = os.environ if env is None else env
    credentials, missing = _credentials(document, environment, required=track_credentials)
    app_api_key, app_url = _app_api(document, environment, app_base_url, region, found := found + missing)
    chosen = base_url if base_url is not None else document.get("baseUrl")
    url = _track_url(chosen, base_url is not None, region, found)
    if found or credentials is None:
        raise ConfigError(listing(source, found))
    return Config(
        parallelism=int(document["parallelism"]),
        user_id=_path(document["userId"]),
        mappings=mappings,
        credentials=credentials,
        region=region,
        base_url=url,
        custom_base_url=chosen is not None,
        rate_limit=rate_limit if rate_limit is not None else document.get("rateLimit"),
        transport=Transport(transport or document.get("transport", Transport.V1)),
        mode=chosen_mode,
        id_type=IdType(document.get("idType", "auto")),
        app_api_key=app_api_key,
        app_base_url=app_url,
        **_guards(document),
    )


def _check_url_options(base_url: str | None, app_base_url: str | None) -> None:
    for option, given in (("--base-url", base_url), ("--app-base-url", app_base_url)):
        if given is not None:
            # The option's fault, not the file's: said without the file's name.
            try:
                normalise_base_url(given)
            except ValueError as e:
                raise ConfigError(f"{option} {e}") from None


def _track_url(chosen: object, option: bool, region: str, found: list[str]) -> str:
    """The Track API's URL: ``chosen`` (from --base-url when ``option``, else baseUrl) or the region's."""
    if chosen is None:
        return REGION_URLS[region]
    try:
        return normalise_base_url(str(chosen))
    except ValueError as e:
        where = "--base-url" if option else '"baseUrl"'
        found.append(f"{where} {e}")
        return REGION_URLS[region]


def _app_api(
    document: dict[str, Any], env: Mapping[str, str], override: str | None, region: str, found: list[str]
) -> tuple[str | None, str]:
    """The App API key (None when there is none: only `verify` needs one) and URL; problems go to ``found``."""
    key = env.get(APP_API_KEY_ENV) or document.get("appApiKey")
    if isinstance(key, str) and not _is_text(key):
        origin = APP_API_KEY_ENV if env.get(APP_API_KEY_ENV) else "the configuration"
        found.append(f"the App API key from {origin} is not valid UTF-8 text")
        key = None
    chosen = override if override is not None else document.get("appBaseUrl")
    url = APP_REGION_URLS[region]
    if chosen is not None:
        try:
            url = normalise_base_url(str(chosen))
        except ValueError as e:
            where = "--app-base-url" if override is not None else '"appBaseUrl"'
            found.append(f"{where} {e}")
    return (str(key) if key else None), url


def _guards(document: dict[str, Any]) -> dict[str, Any]:
    """The tolerance of invalid records, whenRemoved and the guard on removals, as Config's fields."""
    return {
        "max_invalid": _max_invalid(document.get("maxInvalid")),
        "when_removed": WhenRemoved(document.get("whenRemoved", WhenRemoved.KEEP)),
        "max_removals": _max_removals(document.get("maxRemovals")),
    }


def _max_invalid(value: object) -> MaxInvalid | None:
    # The schema takes 3.0 as the integer it equals, as JSON does not tell them apart.
    if isinstance(value, float):
        value = int(value)
    return None if value is None else parse_max_invalid(value)


def _max_removals(value: object) -> MaxRemovals:
    if isinstance(value, float):  # the schema takes 3.0 as the integer it equals
        value = int(value)
    return DEFAULT_MAX_REMOVALS if value is None else parse_max_removals(value)


def _path(source: str | list[str | int | float]) -> RecordPath:
    # The schema takes 1.0 as the integer it equals (JSON does not tell them apart); an array
    # position must be an int all the same.
    return source if isinstance(source, str) else tuple(s if isinstance(s, str) else int(s) for s in source)


def _field_mapping(entry: dict[str, Any]) -> FieldMapping:
    cast = Cast(entry["as"]) if "as" in entry else None
    source = _path(entry["from"]) if "from" in entry else None
    return FieldMapping(source, entry["to"], entry.get("value"), cast, entry.get("skipNull"))


def normalise_base_url(url: str) -> str:
    """Check a base URL and return it without a trailing slash.

    Raises ValueError when it is not an absolute http(s) URL, carries credentials, a query or a
    fragment, spaces or control characters, or is plain http to anything but loopback (the API
    key would cross the network unencrypted).
    """
    # URL parsers drop a tab or line break silently, and HTTP libraries differ in whether they do:
    # the requests would go to a path other than the one written.
    if not url.isprintable() or " " in url:
        at, char = next((i, c) for i, c in enumerate(url) if c.isspace() or not c.isprintable())
        raise ValueError(f"must not contain spaces or control characters: {char!r} at character {at + 1}")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"is not a valid URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"must be an absolute http:// or https:// URL, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password: give credentials as siteId/apiKey")
    # Even an empty one: the paths are appended to the URL's text, so that a "?" or "#" at its end
    # would send every request to the server's root.
    if "?" in url or "#" in url:
        raise ValueError(f"must not have a query or fragment, got {url!r}")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(
            f"uses plain http:// to {host}, which would send the API key unencrypted; "
            "use https://, or http:// only to a loopback address"
        )
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: addresses that never leave this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mapping_problems(mappings: tuple[FieldMapping, ...], mode: Mode) -> list[str]:
    found = []
    if mode is Mode.UPDATE:
        found += [
            f'"mappings[{i}].to": "_update" is set by "mode": "update"'
            for i, m in enumerate(mappings)
            if m.target == UPDATE_ONLY
        ]
        if len(mappings) >= MAX_ATTRIBUTES:
            found.append(f'"mappings": at most {MAX_ATTRIBUTES - 1} with "mode": "update", which adds "_update"')
    first_index: dict[str, int] = {}
    for i, mapping in enumerate(mappings):
        if mapping.source is None:
            found += _constant_problems(i, mapping)
        if mapping.target in first_index:
            earlier = first_index[mapping.target]
            found.append(
                f'"mappings[{i}].to": attribute "{mapping.target}" is already the target of mappings[{earlier}]'
            )
        else:
            first_index[mapping.target] = i
        if len(mapping.target.encode("utf-8", "surrogatepass")) > MAX_ATTRIBUTE_NAME_BYTES:
            found.append(f'"mappings[{i}].to": attribute names may be at most {MAX_ATTRIBUTE_NAME_BYTES} bytes')
    return found


def _constant_problems(i: int, mapping: FieldMapping) -> list[str]:
    value = mapping.value
    if isinstance(value, float) and not math.isfinite(value):
        return [f'"mappings[{i}].value" is a number too large to send as JSON']
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:  # 1e400 inside an object or array reads as infinity
        return [f'"mappings[{i}].value" holds a number too large to send as JSON']
    if value is None and mapping.skip_null:
        return [f'"mappings[{i}].skipNull": the constant is null, so this mapping would never send anything']
    if mapping.cast is not None and value is not None:
        try:
            CASTS[mapping.cast](value)
        except CastError as e:
            return [f'"mappings[{i}].value": {e} (as {mapping.cast.value})']
    return []


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not a JSON number")


class _RepeatedKey(ValueError):
    """An object of the configuration names one key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON parsers keep the last of a repeated key, others the first: which one the writer
    # meant cannot be told, and keeping either would silently drop the other.
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKey(f'the key "{key}" is given twice in one object: keep one of them')
        seen.add(key)
    return dict(pairs)


def _credentials(
    document: dict[str, Any], env: Mapping[str, str], required: bool = True
) -> tuple[Credentials | None, list[str]]:
    # An empty variable counts as unset: `docker run -e CIO_API_KEY` with nothing exported passes "".
    site_id = env.get(SITE_ID_ENV) or document.get("siteId")
    api_key = env.get(API_KEY_ENV) or document.get("apiKey")
    missing = []
    if not site_id:
        missing.append(f'no site id: set "siteId" in the configuration or the {SITE_ID_ENV} environment variable')
    if not api_key:
        missing.append(f'no API key: set "apiKey" in the configuration or the {API_KEY_ENV} environment variable')
    # The environment hands undecodable bytes over as lone surrogates: they cannot be sent.
    for what, value, variable in (("site id", site_id, SITE_ID_ENV), ("API key", api_key, API_KEY_ENV)):
        if isinstance(value, str) and not _is_text(value):
            origin = variable if env.get(variable) else "the configuration"
            missing.append(f"the {what} from {origin} is not valid UTF-8 text")
    if not required and not any(m.startswith("the ") for m in missing):
        # Reading back never writes: the Track API's credentials are not needed, and never used.
        return Credentials(str(site_id or ""), str(api_key or "")), []
    if missing:
        return None, missing
    if site_id and api_key:
        return Credentials(str(site_id), str(api_key)), missing
    return None, missing


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def listing(source: str, found: list[str]) -> str:
    """``found`` as one message about ``source``: the one problem, or how many there are and a list."""
    if len(found) == 1:
        return f"{source}: {found[0]}"
    return f"{source}: {len(found)} problems:\n" + "\n".join(f"  - {p}" for p in found)
