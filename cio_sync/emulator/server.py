"""The emulator as a Python object: the workspace, its HTTP server on a thread, and what tests,
the demo and ``python -m cio_sync.emulator`` use to steer and read it.

The parts: :mod:`.httpd` (the HTTP plumbing), :mod:`.dispatch` (each request's way: faults,
latency, :mod:`.ratelimit`, authorization), :mod:`.track` (the Track API's operations),
:mod:`.recorder` (requests received and counters), :mod:`.admin` (the ``/_emulator/`` paths).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from typing import Any

from . import rules
from .admin import Admin
from .app import BURST as APP_BURST
from .app import RATE_LIMIT as APP_RATE_LIMIT
from .app import AppApi
from .clock import REAL_TIME, Clock
from .dispatch import AppSide, Dispatcher
from .faults import Fault, FaultBook
from .httpd import Server
from .ratelimit import RateLimit
from .recorder import ReceivedRequest, Recorder
from .rules import Choices
from .track import TrackApi, same_person
from .workspace import Person, Workspace, suppressed


class Emulator:
    """The emulated workspace and its HTTP server. Use as a context manager, or start()/stop().

    ``choices`` settles what the spec leaves open (see :class:`~cio_sync.emulator.rules.Choices`);
    ``latency``: each API request is answered no sooner than this after it arrived; ``rate_limit``
    (per second, with ``burst``) answers 429 with ``Retry-After`` above it; ``faults`` are queued.
    The App API takes ``app_api_key`` as its bearer token, ``app_rate_limit`` its 429 limit (None: none).
    ``clock`` (real time unless given one, the client's say) times limits, records and Retry-After dates.
    """

    def __init__(
        self,
        site_id: str = "demo-site",
        api_key: str = "demo-key",
        *,
        region: str = "us",
        environment_id: int = 1,
        choices: Choices | None = None,
        latency: float = 0.0,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Sequence[Fault] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: bool = True,
        app_api_key: str = "demo-app-key",
        app_rate_limit: float | None = APP_RATE_LIMIT,
        app_burst: float | None = APP_BURST,
        clock: Clock = REAL_TIME,
    ) -> None:
        if region not in rules.REGION_URLS:
            raise ValueError(f"region must be one of {', '.join(rules.REGION_URLS)}, not {region!r}")
        self.workspace = Workspace(choices)
        self.faults = FaultBook(same_person(self.workspace.choices))
        for fault in faults:
            self.faults.add(fault)
        self._api = TrackApi(self.workspace, self.faults, region, environment_id)
        self._recorder = Recorder(keep_requests)
        authorization = "Basic " + base64.b64encode(f"{site_id}:{api_key}".encode()).decode()
        self._dispatcher = Dispatcher(
            self._api,
            Admin(self.workspace, self.faults, self.stats, self.reset),
            self._recorder,
            self.faults,
            RateLimit(rate_limit, burst, clock),
            authorization,
            latency,
            clock,
            AppSide(AppApi(self.workspace), RateLimit(app_rate_limit, app_burst, clock), f"Bearer {app_api_key}"),
        )
        # Binding happens here, so a port in use fails at construction with OSError.
        self._server = Server((host, port), self._dispatcher.handle)
        self._thread: threading.Thread | None = None

    @property
    def latency(self) -> float:
        """Seconds every API request waits before it is handled; may be changed while serving."""
        return self._dispatcher.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._dispatcher.latency = seconds

    @property
    def choices(self) -> Choices:
        """What the emulator does where the spec is silent."""
        return self.workspace.choices

    @property
    def url(self) -> str:
        """The base URL to give cio-sync (``--base-url``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        """Serve in a background thread."""
        # A short poll keeps stop() quick; the accept loop itself does not spin.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="emulator", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (KeyboardInterrupt goes on to the caller), then
        close the listening socket."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- steering and reading ---------------------------------------------------------------

    def add_fault(self, fault: Fault | str | None = None, **fields: Any) -> Fault:
        """Queue a fault: a :class:`Fault`, its command-line text, or its fields as keywords."""
        queued = Fault.parse(fault) if isinstance(fault, str) else fault if fault is not None else Fault(**fields)
        self.faults.add(queued)
        return queued

    def add_person(
        self,
        *,
        id: str | None = None,  # noqa: A002 -- the API's own name for the identifier
        email: str | None = None,
        cio_id: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Person:
        """Put a person in the workspace as if created earlier (for update-only runs, cio_id paths)."""
        return self.workspace.add(id=id, email=email, cio_id=cio_id, attributes=attributes)

    def people(self) -> dict[str, dict[str, Any]]:
        """Every person's attributes, by id (else email, else ``cio_<cio_id>``)."""
        return self.workspace.people()

    def person(self, identifier: str) -> Person | None:
        """The person a v1 path value names (``42``, ``Ada@example.com``, ``cio_1f``), or None."""
        return self.workspace.find(rules.path_identifier(identifier, self.choices))

    def writes(self, identifier: str) -> int:
        """How many identify calls changed the person ``identifier`` names."""
        return person.writes if (person := self.person(identifier)) else 0

    def requests(self) -> list[ReceivedRequest]:
        """Every API request received so far, in the order they were answered (when ``keep_requests``):
        one held by a delay comes after those that arrived while it waited."""
        return self._recorder.requests()

    def stats(self) -> dict[str, Any]:
        """Counters: requests received (in all and by endpoint), answers by status, dropped
        connections, requests in flight now and at the peak, people, accepted writes, suppressions."""
        people, writes = self.workspace.counts()
        return {**self._recorder.counters(), "people": people, "writes": writes, **_suppressions(self.workspace)}

    def reset(self) -> None:
        """Forget people, faults, requests and counters."""
        self.workspace.clear()
        self.faults.clear()
        self._recorder.clear()


def _suppressions(workspace: Workspace) -> dict[str, list[str]]:
    """The identifiers suppressed, as the counters name them."""
    return {"suppressed": suppressed(workspace)}
