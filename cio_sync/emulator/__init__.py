"""A local stand-in for Customer.io's Track API, built from its published OpenAPI description.

For rehearsing a sync before touching a real workspace, for cio-sync's tests and demo, and for
``make bench``. It serves ``PUT /api/v1/customers/{identifier}``, ``POST /api/v2/batch`` and
``GET /api/v1/accounts/region`` on loopback with HTTP Basic auth, keeps people with their ``id``,
``email`` and ``cio_id``, and follows the API's rules as :mod:`.rules` states them, each with where
the spec says it. Faults (:class:`Fault`) make it misbehave on purpose. It shares nothing with
cio-sync's client side: it is the oracle the client is tested against.

    cio-sync emulator serve --port 8080        # serve until Ctrl-C (or python -m cio_sync.emulator)
    cio-sync emulator show http://127.0.0.1:8080
"""

from .faults import Drop, Fault, Odd207
from .recorder import ReceivedRequest
from .rules import Choices, Endpoint, Identifier, IdKind
from .server import Emulator
from .workspace import Outcome, Person, Workspace

__all__ = [
    "Choices",
    "Drop",
    "Emulator",
    "Endpoint",
    "Fault",
    "IdKind",
    "Identifier",
    "Odd207",
    "Outcome",
    "Person",
    "ReceivedRequest",
    "Workspace",
]
