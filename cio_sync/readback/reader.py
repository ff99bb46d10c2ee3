"""The App API reader: ``POST /v1/customers/attributes``, 100 people a request, at most 10 requests a
second for all threads together, 429 and 5xx resent, a deadline on every attempt."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import requests
from urllib3.exceptions import HTTPError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ..clock import SYSTEM_CLOCK, Clock
from ..redact import NO_SECRETS
from ..transport.client import AUTH_STATUSES, HttpSettings, describe_error, proxies_for
from ..transport.deadline import Attempt, Watchdog, WatchedAdapter, attempt
from ..transport.pacing import Cancelled
from ..transport.retry import backoff, parse_retry_after
from ..version import __version__

# The App API's documented limits: "up to 100 customers by ID" a request, and most endpoints
# allow "10 requests per second" (each answering 429 above it, with no Retry-After).
MAX_IDS = 100
RATE_LIMIT = 10.0
# The pace kept: 5% under the limit, so that requests bunched up on the way (one sent late, the
# next on time) still arrive at most 10 in any second, as a strict limiter counts them.
PACE = RATE_LIMIT * 0.95
PEOPLE_PATH = "/v1/customers/attributes"
# The most of an answer read. 100 people's attributes fit many times over; a server that sends
# more (or never stops) is cut off here rather than filling memory, and its answer is not used.
MAX_ANSWER_BYTES = 32_000_000
# How much of an error answer a message quotes.
_QUOTED = 300
# Statuses urllib3 resends for us; the read changes nothing, so resending is always safe.
RETRY_STATUSES = frozenset(
    {
        429,  # over the 10-per-second limit: nothing was read; wait and ask again
        500,  # a server error, usually momentary
        502,  # a proxy or load balancer could not reach the API
        503,  # overloaded or in maintenance
        504,  # a proxy gave up waiting for the API
    }
)
# Resends after 429 on top of ``HttpSettings.retries``: "not now" is not "broken".
_RATE_LIMITED_EXTRA = 10


class Pacer:
    """At most ``rate`` attempts a second for all threads together, timed by ``clock``; a 429
    pauses everyone. Waiting ends early, with :class:`Cancelled`, when ``stop`` is set."""

    def __init__(self, rate: float, clock: Clock, stop: threading.Event) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._stop = stop
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._resume_at = float("-inf")

    def wait_turn(self) -> None:
        """Block until this attempt's slot (slots are ``1/rate`` apart, and after any pause)."""
        with self._lock:
            now = self._clock.monotonic()
            start = max(now, self._next, self._resume_at)
            self._next = start + self._interval
        self.sleep(start - now)

    def now(self) -> float:
        """The monotonic time of the pacer's clock."""
        return self._clock.monotonic()

    def wall(self) -> float:
        """The wall-clock time of the pacer's clock (for a Retry-After date)."""
        return self._clock.wall()

    def pause(self, seconds: float) -> None:
        """The App API refused for its rate: nobody starts another attempt for ``seconds``."""
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock.monotonic() + seconds)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless stopped first (then raise :class:`Cancelled`)."""
        if (seconds > 0 and self._clock.wait(self._stop, seconds)) or self._stop.is_set():
            raise Cancelled("the read-back stopped")


class _PacedRetry(Retry):
    """urllib3's Retry, every resend waiting through the shared :class:`Pacer` instead of alone,
    and none starting later than ``resend_window`` seconds after the request first failed
    (``started``): however many resends 429s allow, a request is not resent for ever."""

    def __init__(
        self,
        *args: Any,
        pacer: Pacer | None = None,
        resend_window: float = 300.0,
        started: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pacer = pacer
        self.resend_window = resend_window
        self.started = started

    def new(self, **kwargs: Any) -> _PacedRetry:
        """urllib3 builds a fresh Retry per attempt from a fixed list of fields: carry ours too."""
        kwargs.setdefault("pacer", self.pacer)
        kwargs.setdefault("resend_window", self.resend_window)
        kwargs.setdefault("started", self.started)
        return super().new(**kwargs)

    def increment(self, *args: Any, **kwargs: Any) -> _PacedRetry:
        """As urllib3 counts, but no more resends once the window is over (urllib3 then raises,
        or returns the last answer)."""
        assert self.pacer is not None
        now = self.pacer.now()
        if self.started is None:
            return self.new(started=now).increment(*args, **kwargs)
        if now - self.started > self.resend_window:
            return Retry.increment(self.new(total=0), *args, **kwargs)
        return super().increment(*args, **kwargs)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Back off (a Retry-After when one comes, else jittered exponential), then wait for a slot."""
        assert self.pacer is not None
        delay = None
        if response is not None and response.status in RETRY_STATUSES:
            # Read as a sync reads it: anything malformed (a date past any year's) backs off instead.
            header = response.headers.get("Retry-After")
            delay = None if header is None else parse_retry_after(header, self.retry_after_max, self.pacer.wall())
        if delay is None:
            delay = backoff(self.backoff_factor, self.backoff_max, len(self.history))
        delay = min(delay, self.retry_after_max)
        if response is not None and response.status == 429:
            self.pacer.pause(delay)
        else:
            self.pacer.sleep(delay)
        self.pacer.wait_turn()


def _retry_policy(settings: HttpSettings, pacer: Pacer) -> _PacedRetry:
    """What urllib3 resends, and how often: transient failures only, every resend paced by ``pacer``."""
    return _PacedRetry(
        total=None,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries + _RATE_LIMITED_EXTRA,
        other=0,
        redirect=0,
        # Named: urllib3 does not resend a POST by default, and this one only reads.
        allowed_methods=frozenset({"GET", "POST"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=settings.backoff_factor,
        backoff_max=settings.backoff_max,
        respect_retry_after_header=True,
        raise_on_status=False,
        pacer=pacer,
        resend_window=settings.resend_window,
        # The App API documents no Retry-After; one that comes (from a proxy, say) is capped.
        retry_after_max=math.ceil(settings.retry_after_max),
    )


class ReadStatus(str, Enum):
    """How one request for a batch of people ended."""

    READ = "read"  # a 200 with the people the App API holds
    KEY_REFUSED = "key refused"  # 401 or 403: every request would fail alike
    REFUSED = "refused"  # another 4xx: the request itself was refused (an id_type not enabled, say)
    UNREACHABLE = "unreachable"  # no answer, or still 429/5xx after every resend, or not the App API's answer
    STOPPED = "stopped"  # the read-back was stopped before this request went


@dataclass(frozen=True, slots=True)
class Fetched:
    """One request's outcome: the people it found (the App API's ``customer`` objects), or why none."""

    status: ReadStatus
    customers: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    http_status: int | None = None


class AppReader:
    """Reads people through the App API with one pooled Session; safe to share between ``pool_size`` threads.

    Every message it gives passes through ``redact``: an App API (or anything answering in its
    place) may quote the request, its ``Authorization`` header included.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        settings: HttpSettings,
        *,
        pool_size: int = 4,
        rate: float = PACE,
        clock: Clock = SYSTEM_CLOCK,
        stop: threading.Event | None = None,
        redact: Callable[[str], str] = NO_SECRETS,
    ) -> None:
        self._url = base_url + PEOPLE_PATH
        self._base = base_url
        self._redact = redact
        self.stop = stop if stop is not None else threading.Event()
        self.pacer = Pacer(rate, clock, self.stop)
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._watchdog = Watchdog(settings.read_timeout, self.stop)
        retry = _retry_policy(settings, self.pacer)
        self._session = requests.Session()
        adapter = WatchedAdapter(pool_connections=1, pool_maxsize=max(1, pool_size), max_retries=retry)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # The environment's proxy and CA settings, resolved once; then no longer consulted, so a
        # proxy can never carry the key over plain http (see client.proxies_for).
        found = self._session.merge_environment_settings(base_url, {}, False, None, None)
        self._proxies = proxies_for(base_url, found["proxies"])
        self._verify: bool | str = True if found["verify"] is None else found["verify"]
        self._session.trust_env = False
        self._session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"cio-sync/{__version__}",
                "Accept": "application/json",
            }
        )

    def fetch(self, id_type: str, ids: Sequence[str]) -> Fetched:
        """``POST /v1/customers/attributes?id_type=...`` for at most 100 ``ids``."""
        assert 0 < len(ids) <= MAX_IDS
        try:
            self.pacer.wait_turn()
            with attempt(self._watchdog) as current:
                answered = self._post(id_type, ids, current)
        except Cancelled:  # waiting for its turn, or opening a connection (ConnectCut)
            return Fetched(ReadStatus.STOPPED)
        except requests.RequestException as e:
            message = f"cannot reach the App API at {self._base}: {describe_error(e)}"
            return Fetched(ReadStatus.UNREACHABLE, message=self._redact(message))
        if isinstance(answered, Fetched):
            return answered
        response, body = answered
        return _classify(response, body, self._base, self._redact)

    def _post(self, id_type: str, ids: Sequence[str], current: Attempt) -> tuple[requests.Response, bytes] | Fetched:
        """One request and its whole answer (at most MAX_ANSWER_BYTES + 1 of it), within the deadline."""
        try:
            response = self._session.post(
                self._url,
                params={"id_type": id_type},
                json={"ids": list(ids)},
                timeout=self._timeout,
                proxies=self._proxies,
                verify=self._verify,
                # A redirect is never followed: the key would go along to wherever it points.
                allow_redirects=False,
                stream=True,
            )
            body = _read_body(response)
            if current.last_cut:
                # Cut while the headers came: http.client reads the end of the stream as the end
                # of the headers, and a cut status line could pass for a whole answer.
                raise requests.exceptions.ConnectionError("the answer was cut off")
        except (requests.RequestException, HTTPError, OSError) as e:
            current.end()
            if current.cut and self.stop.is_set():
                return Fetched(ReadStatus.STOPPED)
            if current.cut:
                message = f"the App API at {self._base} gave no complete answer within {self._timeout[1]:g} s"
                return Fetched(ReadStatus.UNREACHABLE, message=self._redact(message))
            if isinstance(e, requests.RequestException):
                raise
            raise requests.exceptions.ConnectionError(e) from e
        return response, body

    @property
    def traffic_sent(self) -> int:
        """Requests sent so far, resends included."""
        return self._watchdog.traffic.sent

    def close(self) -> None:
        """Close the pooled connections and stop watching deadlines."""
        self._session.close()
        self._watchdog.close()


def _read_body(response: requests.Response) -> bytes:
    """At most MAX_ANSWER_BYTES + 1 bytes of the body (one more tells an answer too long)."""
    raw = response.raw
    body: bytes = raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    if len(body) > MAX_ANSWER_BYTES or response.status_code < 200:
        # Not reused: the rest of a long answer, or whatever follows an interim 1xx answer taken
        # for the answer, would be read as the next request's answer on this connection.
        raw.close()
    raw.release_conn()
    return body


def _classify(response: requests.Response, body: bytes, base: str, redact: Callable[[str], str]) -> Fetched:
    status = response.status_code
    if status in AUTH_STATUSES:
        return Fetched(
            ReadStatus.KEY_REFUSED, message=f"the App API refused the key (HTTP {status})", http_status=status
        )
    if status != 200 or len(body) > MAX_ANSWER_BYTES:
        return _not_read(response, body, base, redact)
    customers = _customers(body)
    if customers is None:
        message = f"{base} answered 200 without a list of customers: is it the App API?"
        return Fetched(ReadStatus.UNREACHABLE, message=message, http_status=status)
    return Fetched(ReadStatus.READ, customers, http_status=status)


def _not_read(response: requests.Response, body: bytes, base: str, redact: Callable[[str], str]) -> Fetched:
    """Any answer but a 200 of a sensible size, and what it means."""
    status = response.status_code
    kind = ReadStatus.UNREACHABLE
    if len(body) > MAX_ANSWER_BYTES:
        message = f"{base} answered more than {MAX_ANSWER_BYTES // 1_000_000} MB: not an answer of the App API"
    elif 300 <= status < 400:
        target = redact(response.headers.get("Location", "nowhere"))[:200]
        message = (
            f"{base} answered HTTP {status}, a redirect to {target}: not followed, so that the key goes nowhere else"
        )
    elif status in RETRY_STATUSES:
        message = f"the App API at {base} still answered HTTP {status} after every resend"
    else:
        message = f"the App API refused the request (HTTP {status}): {_quote(body, redact)}"
        kind = ReadStatus.REFUSED if 400 <= status < 500 else ReadStatus.UNREACHABLE
    return Fetched(kind, message=redact(message), http_status=status)


def _customers(body: bytes) -> list[dict[str, Any]] | None:
    """The people of a 200 answer (``{"customers": [{"customer": {...}}, ...]}``); None when it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any answer is
        return None
    customers = document.get("customers") if isinstance(document, dict) else None
    if not isinstance(customers, list):
        return None
    found = []
    for item in customers:
        # Each item is {"customer": {...}}; an item that is the person itself is read as one too.
        person = item.get("customer", item) if isinstance(item, dict) else None
        if not isinstance(person, dict):
            return None
        if not all(isinstance(person.get(part, {}), dict) for part in ("attributes", "identifiers")):
            return None
        found.append(person)
    return found


def _quote(body: bytes, redact: Callable[[str], str]) -> str:
    """An error answer's own words in one line, its credentials masked before it is cut short."""
    text = body.decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    try:
        words = _words(document) if isinstance(document, dict) else text
    except RecursionError:  # a message nested deeper than str() goes
        words = text
    return " ".join(redact(words).split())[:_QUOTED] or "no message"


def _words(document: dict[str, Any]) -> str:
    """The messages of an App API error document (``meta.error``, ``meta.errors``, ``errors``)."""
    meta = document.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    items: list[Any] = [meta.get("error")]
    for listed in (meta.get("errors"), document.get("errors")):
        items.extend(listed if isinstance(listed, list) else [])
    words = [
        str(item.get("detail") or item.get("message") or item) if isinstance(item, dict) else str(item)
        for item in items
        if item is not None
    ]
    return "; ".join(words) if words else json.dumps(document, ensure_ascii=False)
