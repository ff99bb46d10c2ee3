"""Each request's way through the emulator: admin paths aside; for the API, counting, then faults
and latency, the rate limit and authorization, before the Track API (or the App API) answers; then
the record."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace

from . import app, rules
from .admin import PREFIX as ADMIN_PREFIX
from .admin import Admin
from .app import AppApi
from .clock import Clock
from .faults import Drop, Fault, FaultBook, Matched
from .httpd import Answer, Handler, json_answer, read_body, send
from .ratelimit import RateLimit
from .recorder import ReceivedRequest, Recorder
from .rules import Problem
from .track import TrackApi, TrackRequest


@dataclass(frozen=True)
class AppSide:
    """The App API's part of the emulator: its operations, its own rate limit and its bearer key."""

    api: AppApi
    rate_limit: RateLimit
    authorization: str


class Dispatcher:
    """Answers every request the server receives (on the server's connection threads).

    ``latency`` is how long after its arrival, at least, each API request is answered (its
    reading and parsing count within it); it may be changed while serving.
    """

    def __init__(
        self,
        api: TrackApi,
        admin: Admin,
        recorder: Recorder,
        faults: FaultBook,
        rate_limit: RateLimit,
        authorization: str,
        latency: float,
        clock: Clock,
        app_side: AppSide | None = None,
    ) -> None:
        self.latency = latency
        self._clock = clock
        self._api = api
        self._admin = admin
        self._recorder = recorder
        self._faults = faults
        self._rate_limit = rate_limit
        self._authorization = authorization
        self._app = app_side

    def handle(self, handler: Handler) -> None:
        """Answer one request."""
        arrived = time.monotonic()
        raw = read_body(handler)
        if raw is None:
            # The client went away mid-request (killed, say), or framed it so that its end cannot
            # be found: a request that never fully arrived is not applied, and the connection ends.
            handler.close_connection = True
            return
        path = handler.path.split("?", 1)[0]
        if path.startswith(ADMIN_PREFIX):
            send(handler, self._admin.answer(handler.command, path, raw))
            return
        started = self._clock.monotonic()
        request = TrackRequest.read(handler.command, handler.path, raw, handler.headers)
        on_app = self._app is not None and app.serves(path)
        if on_app:
            request = replace(request, endpoint=app.endpoint_of(path), person_id=None)
        # Counted before the answer goes out, so a client that has its answer can rely on the counters.
        with self._recorder.in_flight(request.endpoint):
            if self._app is not None and on_app:
                people = self._app.api.people_named(request.target, request.document)
            else:
                people = self._api.people_named(request)
            matched = self._faults.take(request.endpoint, people)
            answer = self._decide(request, matched, arrived, on_app)
        self._recorder.record(_received(request, answer, started, self._clock.monotonic(), matched))
        send(handler, answer)

    def _decide(self, request: TrackRequest, matched: Matched | None, arrived: float, on_app: bool = False) -> Answer:
        """The answer, decided no sooner than the latency after the request ``arrived`` (a
        ``time.monotonic`` reading) and any fault's delay after it was read: a fault's, the rate
        limit's, a refusal of the credentials, or the API's."""
        fault = matched.fault if matched else None
        endpoint = request.endpoint
        # The latency counts from the arrival, so that reading and parsing the request fall
        # within it, as a server's own work falls within the latency its clients see; a fault's
        # delay holds the request read in full, however long it took to come.
        delay = max(0.0, arrived + self.latency - time.monotonic()) + (fault.delay if fault and fault.delay else 0.0)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.status is not None:
            if fault.apply_after is not None and request.authorization == self._authorization:
                self._apply_later(request, fault.apply_after)
            retry_after = fault.retry_after_header(self._clock.wall())
            headers = (("Retry-After", retry_after),) if retry_after is not None else ()
            return json_answer(fault.status, rules.error_body(endpoint, Problem("fault", "injected fault")), headers)
        if fault is not None and fault.drop is Drop.BEFORE:
            return Answer(None)
        if self._app is not None and on_app:
            return self._decide_app(request, fault)
        retry_after_seconds = self._rate_limit.retry_after()
        if retry_after_seconds is not None:
            problem = Problem("rate", "rate limit exceeded")
            return json_answer(429, rules.error_body(endpoint, problem), (("Retry-After", str(retry_after_seconds)),))
        if request.authorization != self._authorization:
            return json_answer(401, rules.error_body(endpoint, Problem("authorization", rules.UNAUTHORIZED)))
        answer = self._api.answer(request, matched if fault and fault.odd_207 else None)
        if fault is not None and fault.drop is Drop.AFTER:
            return Answer(None)
        if fault is not None and fault.drip:
            return Answer(answer.status, answer.body, answer.content_type, answer.headers, fault.drip)
        if fault is not None and fault.hints:
            return replace(answer, interim=fault.hints)
        return answer

    def _apply_later(self, request: TrackRequest, seconds: float) -> None:
        """Apply ``request``'s write ``seconds`` from now, counted in flight until it is."""
        pending = ExitStack()
        pending.enter_context(self._recorder.in_flight(request.endpoint))

        def apply() -> None:
            with pending:
                time.sleep(seconds)
                self._api.answer(request, None)

        threading.Thread(target=apply, name="emulator-late-write", daemon=True).start()

    def _decide_app(self, request: TrackRequest, fault: Fault | None) -> Answer:
        """After faults: the App API's rate limit (429 with no Retry-After), its bearer key, its answer."""
        assert self._app is not None
        if self._app.rate_limit.retry_after() is not None:
            return json_answer(429, app.error(app.OVER_LIMIT))
        if request.authorization != self._app.authorization:
            return json_answer(401, app.error("Unauthorized: an App API key is needed, as a bearer token"))
        answer = self._app.api.answer(request.method, request.target, request.document, request.is_json)
        if fault is not None and fault.drop is Drop.AFTER:
            return Answer(None)
        if fault is not None and fault.drip:
            return Answer(answer.status, answer.body, answer.content_type, answer.headers, fault.drip)
        return answer


def _received(
    request: TrackRequest, answer: Answer, started: float, answered_at: float, matched: Matched | None
) -> ReceivedRequest:
    answered = answer.status is not None
    return ReceivedRequest(
        request.method,
        request.target,
        request.endpoint,
        request.person_id,
        request.document,
        answer.status,
        started,
        answered_at,
        request.raw,
        request.content_type,
        request.authorization,
        answer.body if answered else None,
        answer.content_type if answered else None,
        matched.fault if matched else None,
    )
