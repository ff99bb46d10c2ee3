"""The HTTP side: one Session, its Retry policy, and what each Track API answer means."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ApiUnreachable, CredentialsRejected
from ..input.config import Config, is_loopback
from ..outcome import NOT_SENT, Delivery, Status, StopReason
from ..redact import NO_SECRETS, Redactor
from ..version import __version__
from .deadline import Attempt, ConnectCut, SwitchedProtocols, Traffic, Watchdog, WatchedAdapter, attempt
from .pacing import Cancelled, Gate
from .retry import PacedRetry

# Statuses urllib3 retries for us. Everything else comes straight back to be classified.
RETRY_STATUSES = frozenset(
    {
        429,  # the workspace's rate limit: the request was not processed; wait and resend
        500,  # a server error, usually momentary; PUT is idempotent, so resending is safe
        502,  # a proxy or load balancer could not reach the API: transient by nature
        503,  # the API is overloaded or in maintenance, often with Retry-After
        504,  # a proxy timed out waiting for the API: the request may or may not have applied,
        #     and because PUT is idempotent a resend converges on the same state
    }
)
# 401 and 403 mean the credentials are wrong for this workspace: every request would fail alike.
AUTH_STATUSES = frozenset({401, 403})
# The most of an answer's body that is read. The Track API's answers are small; a 207 for the
# largest batch is well under this. What lies beyond is not read, and the connection is dropped.
MAX_ANSWER_BYTES = 4_000_000


DEFAULT_RETRIES = 5
DEFAULT_READ_TIMEOUT = 30.0
# How long a run goes on starting requests while none makes progress.
DEFAULT_GIVE_UP_AFTER = 300.0
# The longest wait for an answer that can be asked for: longer is a mistake (or infinity).
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Timeouts and the retry policy. Tests shrink the waits; users rarely need to."""

    connect_timeout: float = 10.0
    read_timeout: float = DEFAULT_READ_TIMEOUT
    # Resends after the first attempt, for each of: connection errors, read errors, statuses.
    retries: int = DEFAULT_RETRIES
    # Backoff before resend n is about backoff_factor * 2**(n-1) seconds, jittered, capped.
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    # A Retry-After longer than this is shortened to it.
    retry_after_max: float = 300.0
    # Resends after 429 before they start to count against ``retries``: the workspace is saying
    # "not now", not "broken". With the learned rate a record rarely needs more than two, so this
    # is headroom for storms, kept small so a workspace that refuses everything still ends.
    rate_limited_retries: int = 10
    # No resend of a request starts later than this after its first failure.
    resend_window: float = 300.0
    # The run stops starting requests when none has made progress (a 2xx, or an answer other
    # than 429 and 5xx) for this long.
    give_up_after: float = DEFAULT_GIVE_UP_AFTER

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "backoff_max", "retry_after_max", "resend_window"):
            value = getattr(self, name)
            if not 0 < value <= MAX_TIMEOUT:  # false for NaN too
                raise ValueError(f"{name} must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {value}")


def retry_policy(settings: HttpSettings, gate: Gate, clock: Clock | None = None) -> PacedRetry:
    """What urllib3 resends, and how often: transient failures only, paced through ``gate``,
    timed by ``clock`` (by default the gate's)."""
    return PacedRetry(
        total=None,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        other=0,
        redirect=0,
        # PUT, GET and DELETE are idempotent; POST is listed by name because the v2 batch of
        # identify calls is too (sending it twice leaves the same attributes), and so are suppress
        # and unsuppress (a second one finds the identifier as the first left it).
        allowed_methods=frozenset({"GET", "PUT", "POST", "DELETE"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=settings.backoff_factor,
        backoff_max=settings.backoff_max,
        retry_after_cap=settings.retry_after_max,
        respect_retry_after_header=True,
        raise_on_status=False,
        gate=gate,
        rate_limited=settings.rate_limited_retries,
        resend_window=settings.resend_window,
        clock=clock,
    )


class _LeanAdapter(WatchedAdapter):
    """An HTTPAdapter that does once what requests does for each request, where this client's
    requests cannot differ, and whose connections are watched for their deadline (see
    :mod:`cio_sync.transport.deadline`).

    Every request goes to one origin with the same TLS and proxy settings, to a URL without a
    query or fragment. For each request, requests parses the URL twice, looks the pool up in the
    pool manager (and stats a CA bundle given by path), copies the answer's headers, extracts
    cookies and sniffs a charset. Per request on v1 (callgrind instructions against the
    emulator), the pool cost 11%, the path 6% and the copy 2%; cookies and charset cost more
    than building the response. Each override is an extension point requests documents for
    subclasses of HTTPAdapter.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The pool the last request went to, and what chose it: a request that would choose the
        # same gets the same pool from the pool manager, which nothing else changes meanwhile.
        self._last_pool: tuple[tuple[object, ...], ConnectionPool] | None = None

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: str | tuple[str, str] | None = None,
    ) -> ConnectionPool:
        """The pool for ``request``: the last one when the origin and settings are the same."""
        url = request.url or ""
        key = (_origin(url), verify, cert, tuple(sorted(proxies.items())) if proxies else ())
        last = self._last_pool
        if last is not None and last[0] == key:
            return last[1]
        pool = super().get_connection_with_tls_context(request, verify, dict(proxies or {}), cert)
        self._last_pool = (key, pool)
        return pool

    def request_url(self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        """The path sent in the request line: what ``request.path_url`` gives, found without
        parsing a URL that goes straight to its origin and has no query, fragment or character
        a parser would drop."""
        url = request.url or ""
        if proxies or "?" in url or "#" in url or not url.isprintable():
            return str(super().request_url(request, dict(proxies or {})))
        return url[len(_origin(url)) :] or "/"

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        """A Response carrying the status and the answer to read, and nothing else: no cookies
        (the Track API sets none that matter), no charset sniffing (JSON is UTF-8), and the
        answer's own case-insensitive headers rather than a copy."""
        response = requests.Response()
        response.status_code = resp.status
        response.headers = resp.headers
        response.raw = resp
        response.reason = resp.reason
        response.encoding = "utf-8"
        response.url = req.url or ""
        response.request = req
        response.connection = self
        return response

    def close(self) -> None:
        """Close every pool; the next request chooses its pool afresh."""
        self._last_pool = None
        super().close()


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL: up to the first "/" after the "//"."""
    start = url.find("//") + 2
    end = url.find("/", start)
    return url if end < 0 else url[:end]


@dataclass(frozen=True, slots=True)
class Answer:
    """A final answer, read: its status, reason phrase, body (at most MAX_ANSWER_BYTES), and how
    many times the request was resent before it."""

    status: int
    reason: str
    body: bytes
    retries: int = 0

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text (JSON is UTF-8)."""
        return self.body.decode("utf-8", "replace")


class _NotSent(Cancelled):
    """The run stopped before any attempt of the request was sent."""


class TrackClient:
    """Sends people to the Track API through one pooled, retrying ``requests.Session``.

    Safe to share between threads: the Session's pool is sized for ``pool_size`` workers.
    Deadlines and resend windows are timed by ``clock`` (waits at the gate by the gate's).
    """

    def __init__(
        self,
        config: Config,
        settings: HttpSettings,
        gate: Gate,
        pool_size: int,
        stop: threading.Event | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._settings = settings
        # Public: the batch transport asks it whether requests are scarce.
        self.gate = gate
        # Every attempt ends within the read timeout of being sent, body included; and soon
        # after ``stop`` is set.
        self._stop = stop if stop is not None else threading.Event()
        self._watchdog = Watchdog(settings.read_timeout, self._stop, clock)
        # Server text can quote the credentials back (an echoed Authorization header): every
        # text built from an answer is masked before it leaves this client.
        credentials = config.credentials
        self._redact = Redactor((credentials.site_id, credentials.api_key))

        self._base = config.base_url
        self._people = config.base_url + "/api/v1/customers/"
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        retry = retry_policy(settings, gate, clock)
        self._session = requests.Session()
        self._adapter = _LeanAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=retry)
        self._session.mount("https://", self._adapter)
        self._session.mount("http://", self._adapter)
        # Proxy and CA settings from the environment, resolved once rather than per request.
        found = self._session.merge_environment_settings(self._base, {}, False, None, None)
        self._proxies = proxies_for(self._base, found["proxies"])
        self._verify: bool | str = True if found["verify"] is None else found["verify"]
        self._cert = found["cert"]
        self._headers = _headers(config)

    def check_credentials(self) -> str | None:
        """Ask the workspace which region it is in; this also proves the credentials.

        Returns the region ("us", "eu") when the workspace says, else None. Raises
        :class:`CredentialsRejected` on 401/403 and :class:`ApiUnreachable` when no answer came.
        """
        try:
            self.gate.wait_turn()
            answer = self._send("GET", self._base + "/api/v1/accounts/region", None)
        except Cancelled:
            return None
        except requests.RequestException as e:
            reason = describe_error(e, redact=self._redact)
            raise ApiUnreachable(f"cannot reach the Track API at {self._base}: {reason}") from None
        if answer.status in AUTH_STATUSES:
            raise CredentialsRejected(
                f"the workspace refused the credentials (HTTP {answer.status}); "
                "check the site id and API key (Settings > API Credentials > Track API keys)"
            )
        return region_of(answer)

    def put_person(self, path: str, body: bytes | None, method: str = "PUT") -> Delivery:
        """``PUT /api/v1/customers/{path}`` with ``body``, resending transient failures; or, without
        a body, another ``method`` (``DELETE`` a person, ``POST`` to ``{id}/suppress``)."""
        answer = self._write(method, self._people + path, body)
        return answer if isinstance(answer, Delivery) else self._classify(answer)

    def post_batch(self, body: bytes, count: int) -> list[Delivery]:
        """``POST /api/v2/batch`` with ``count`` items; one delivery per item, in order.

        200: every item synced. 207: the items named by ``batch_index`` in ``errors`` failed, the
        others synced. Any other answer applies to the whole batch, as for one person.
        """
        answer = self._write("POST", self._base + "/api/v2/batch", body)
        if isinstance(answer, Delivery):
            return [answer] * count
        if answer.status == 207:
            self.gate.succeeded()
            return partial_deliveries(answer, count, self._redact)
        return [self._classify(answer)] * count

    def _write(self, method: str, url: str, body: bytes | None) -> Answer | Delivery:
        """A write's answer once its turn came, or the delivery that stands for the answer that
        did not come (not sent when the run stopped first)."""
        try:
            self.gate.wait_turn()
        except Cancelled:
            return NOT_SENT
        try:
            return self._send(method, url, body)
        except _NotSent:
            return NOT_SENT
        except Cancelled as e:
            return Delivery(Status.FAILED, None, str(e))
        except requests.RequestException as e:
            reason = describe_error(e, write=True, redact=self._redact)
            return Delivery(Status.FAILED, None, reason, self._settings.retries)

    def _classify(self, answer: Answer) -> Delivery:
        # The gate learns from what the workspace accepted, and from answers that were not about
        # its rate; then the answer is classified.
        status = answer.status
        if 200 <= status < 300:
            self.gate.succeeded()
        elif status not in AUTH_STATUSES and status not in RETRY_STATUSES:
            self.gate.answered()
        return delivery_of(answer, self._redact)

    @property
    def traffic(self) -> Traffic:
        """What went over the wire: requests sent, resends included, and answers by status."""
        return self._watchdog.traffic

    def close(self) -> None:
        """Close the pooled connections and stop watching deadlines."""
        self._session.close()
        self._watchdog.close()

    def _send(self, method: str, url: str, body: bytes | None) -> Answer:
        """One request, resends included; its final answer, read. Raises :class:`Cancelled` when
        the run stops first (:class:`_NotSent` when no attempt was sent), else a RequestException."""
        request = _prepared(method, url, self._headers, body)
        with attempt(self._watchdog) as current:
            try:
                # The adapter's documented ``send``, not Session.send (see ``_prepared``).
                response = self._adapter.send(
                    request,
                    stream=True,
                    timeout=self._timeout,
                    verify=self._verify,
                    cert=self._cert,
                    proxies=self._proxies,
                )
                answer = _read(response)
                if current.last_cut:
                    # Cut while the headers came: http.client reads the end of the stream as the
                    # end of the headers, and a cut status line could pass for a whole answer.
                    raise requests.exceptions.ConnectionError("the answer was cut off")
            except (Cancelled, requests.RequestException, HTTPError, OSError) as e:
                current.end()
                failure = _failure(e, current, self._stop.is_set(), self._settings.read_timeout)
                if failure is e:
                    raise
                raise failure from e
        return answer


def _prepared(method: str, url: str, headers: CaseInsensitiveDict[str], body: bytes | None) -> requests.PreparedRequest:
    """The request to send: what PreparedRequest's ``prepare_*`` steps give for it, set directly.

    ``headers`` were checked by ``prepare_headers`` once, when the client was built; this adds
    the Content-Length those steps add (0 for a write without a body, as for an empty one). The
    URL is set as it is: it is already encoded exactly as it must be sent, and ``prepare_url``
    would unquote %2E back into a dot (an id "." or ".." would then name another path). It then
    goes to the adapter's documented ``send``: Session.prepare_request and Session.send handle
    cookies, hooks, auth and redirects this client never has. Per request (callgrind
    instructions against the emulator) the ``prepare_*`` steps cost 4% more than this,
    Session.send 5% more than the adapter's send, and Session.prepare_request took 85 us where
    the ``prepare_*`` steps took 7.
    """
    request = requests.PreparedRequest()
    request.method = method
    request.url = url
    request.headers = headers.copy()
    if body or method not in ("GET", "HEAD"):
        request.headers["Content-Length"] = str(len(body or b""))
    request.body = body or None
    return request


def _failure(error: Exception, current: Attempt, stopping: bool, read_timeout: float) -> Exception:
    """What a request that failed with ``error`` raises: Cancelled when the run stopped it
    (_NotSent when none of its attempts was sent), a ReadTimeout when its deadline cut it, else a
    RequestException."""
    if isinstance(error, Cancelled):
        if not current.sent:
            return _NotSent(str(error))
        if isinstance(error, ConnectCut):
            # Cut opening the connection for a resend: an earlier attempt went out, and may have
            # been applied.
            return Cancelled("the run stopped before its answer came (it may have been applied)")
        return error
    if current.cut and stopping:
        return Cancelled("the run stopped before its answer came (it may have been applied)")
    if current.cut:
        return requests.exceptions.ReadTimeout(f"no complete answer within {read_timeout:g} s")
    if isinstance(error, requests.RequestException):
        return error
    return requests.exceptions.ConnectionError(error)


def _headers(config: Config) -> CaseInsensitiveDict[str]:
    """The headers of every request: HTTP Basic auth, who is asking, and a JSON body; checked
    as requests checks the headers it sends."""
    token = base64.b64encode(f"{config.credentials.site_id}:{config.credentials.api_key}".encode()).decode()
    checked = requests.PreparedRequest()
    checked.prepare_headers(
        {
            "Authorization": f"Basic {token}",
            "User-Agent": f"cio-sync/{__version__}",
            "Content-Type": "application/json",
        }
    )
    return checked.headers


def region_of(answer: Answer) -> str | None:
    """The region a successful region check names, or None when it names none."""
    if not 200 <= answer.status < 400:
        return None
    try:
        region = answer.json().get("region")
    except (ValueError, AttributeError):
        return None
    return region if isinstance(region, str) else None


def delivery_of(answer: Answer, redact: Redactor = NO_SECRETS) -> Delivery:
    """What a whole answer means for the person (or every item of the batch) it answers."""
    status, retries = answer.status, answer.retries
    if 200 <= status < 300:
        return Delivery(Status.SYNCED, status, None, retries)
    if status in AUTH_STATUSES:
        reason = f"HTTP {status}: the workspace refused the credentials"
        return Delivery(Status.FAILED, status, reason, retries, stop=StopReason.CREDENTIALS)
    after = f" after {retries + 1} attempts" if retries else ""
    return Delivery(Status.FAILED, status, f"HTTP {status}{after}: {api_message(answer, redact)}", retries)


def partial_deliveries(answer: Answer, count: int, redact: Redactor = NO_SECRETS) -> list[Delivery]:
    """A 207's deliveries: the items its errors name failed, the others synced."""
    status, retries = answer.status, answer.retries
    errors = item_errors(answer, count, redact)
    if errors is None:
        # Some item failed, and the answer does not say which: none is known to have landed, and
        # any may have.
        unclear = "HTTP 207: the answer does not say which items failed, so this one may not have landed"
        return [Delivery(Status.FAILED, status, unclear, retries, unclear=True)] * count
    deliveries = [Delivery(Status.SYNCED, status, None, retries)] * count
    for index, reason in errors.items():
        deliveries[index] = Delivery(Status.FAILED, status, f"HTTP 207: {reason}", retries)
    return deliveries


def _read(response: requests.Response) -> Answer:
    """The answer: at most MAX_ANSWER_BYTES of the body are read, and the connection is dropped
    rather than read further."""
    raw = response.raw
    body = raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    if len(body) > MAX_ANSWER_BYTES:
        body = body[:MAX_ANSWER_BYTES]
        raw.close()
    raw.release_conn()
    retries = len(raw.retries.history) if raw.retries else 0
    return Answer(response.status_code, response.reason or "", body, retries)


def proxies_for(base_url: str, proxies: Mapping[str, str]) -> dict[str, str]:
    """Which of the environment's ``proxies`` may carry requests to ``base_url``: at most one.

    The API key must never cross a network unencrypted, whatever the environment says. Loopback
    is never reached through a proxy, and plain http (loopback only) neither; an https URL may
    go through its proxy, which urllib3 asks for a tunnel with CONNECT, so the proxy sees the
    host name and nothing else of the request.
    """
    parts = urlsplit(base_url)
    if parts.scheme != "https" or is_loopback(parts.hostname or ""):
        return {}
    chosen = select_proxy(base_url, dict(proxies))
    return {"https": chosen} if chosen else {}


def item_errors(answer: Answer, count: int, redact: Redactor = NO_SECRETS) -> dict[int, str] | None:
    """A 207 answer's per-item errors: batch index -> reason, in the workspace's words (with any
    credential they quote masked by ``redact``).

    None when the answer does not say exactly which of the ``count`` items failed: a body that is
    not JSON, no error listed, or an error without an integer ``batch_index`` within the batch.
    A 207 means at least one item failed, so such an answer clears no item.
    """
    try:
        data = answer.json()
    except ValueError:
        return None
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list) or not errors:
        return None
    found: dict[int, str] = {}
    for error in errors:
        index = error.get("batch_index") if isinstance(error, dict) else None
        if type(index) is not int or not 0 <= index < count:
            return None
        assert isinstance(error, dict)
        words = [str(error[k]) for k in ("reason", "field", "message") if error.get(k)]
        found[index] = _quoted(": ".join(words), redact) or "refused"
    return found


def api_message(answer: Answer, redact: Redactor = NO_SECRETS) -> str:
    """The workspace's own words from an error answer, in one line, any credential they quote
    masked by ``redact``."""
    try:
        data = answer.json()
    except ValueError:
        text = answer.text
        return _quoted(text, redact) if text.strip() else redact(answer.reason or "no message")
    messages: list[str] = []
    if isinstance(data, dict):
        meta = data.get("meta")
        if isinstance(meta, dict):
            if isinstance(meta.get("error"), str):
                messages.append(meta["error"])
            if isinstance(meta.get("errors"), list):
                messages.extend(str(m) for m in meta["errors"])
        if isinstance(data.get("errors"), list):
            for item in data["errors"]:
                if isinstance(item, dict):
                    messages.append(str(item.get("message") or item.get("reason") or item))
                else:
                    messages.append(str(item))
    return _quoted("; ".join(messages) if messages else json.dumps(data), redact)


def _quoted(text: str, redact: Redactor) -> str:
    """``text`` in one line, its credentials masked, then cut to 300 characters. Spaces are
    squeezed first and the text masked whole: a cut made before either could split a credential
    (a long run of spaces squeezed after a cut pulls the cut back to the front)."""
    return redact(" ".join(text.split()))[:300]


def describe_error(error: BaseException, *, write: bool = False, redact: Redactor = NO_SECRETS) -> str:
    """A connection-level failure in a few words, without the URL or the pool's internals, any
    credential in them masked by ``redact``.

    For a ``write``, a failure after the request was sent (no answer, or no answer in time) says
    that the write may have been applied all the same: the person's state is unknown.
    """
    return redact(_describe(error, write))


def _describe(error: BaseException, write: bool) -> str:
    maybe = " (it may have been applied)" if write else ""
    cause: BaseException | None = error
    seen = 0
    while cause is not None and seen < 10:
        seen += 1
        if isinstance(cause, MaxRetryError) and cause.reason is not None:
            cause = cause.reason
            continue
        # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so it goes first.
        if isinstance(cause, NewConnectionError):
            text = str(cause)
            return "cannot connect: " + (text.rsplit(": ", 1)[-1] if ": " in text else text)
        if isinstance(cause, ConnectTimeoutError):
            return "timed out connecting"
        if isinstance(cause, ReadTimeoutError):
            return "timed out waiting for an answer" + maybe
        if isinstance(cause, SSLError):
            return f"TLS error: {cause}"
        if isinstance(cause, ProtocolError):
            inner = cause.args[1] if len(cause.args) > 1 else None
            if isinstance(inner, SwitchedProtocols):
                return f"{inner}{maybe}"
            return f"the connection was dropped ({type(inner).__name__ if inner else 'no answer'})" + maybe
        if isinstance(cause, requests.exceptions.ReadTimeout):
            said = cause.args[0] if cause.args else None
            return "timed out waiting for an answer" + (f" ({said})" if isinstance(said, str) else "") + maybe
        if isinstance(cause, requests.exceptions.ConnectTimeout):
            return "timed out connecting"
        if type(cause) is OSError and cause.errno is None and cause.args and isinstance(cause.args[0], str):
            # Raised by requests itself, in words of its own: a CA bundle that is not there, say.
            return cause.args[0]
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = nested or cause.__cause__ or cause.__context__
    return type(error).__name__
