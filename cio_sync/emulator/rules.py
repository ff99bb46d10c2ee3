"""The Track API's rules as Customer.io's OpenAPI description states them, each with where it says so.

Citations name a place in Customer.io's published spec of the Track API ("Customer.io Track API"
1.0.0, OpenAPI 3.1): ``info`` is its introduction, ``identify`` is
``paths./api/v1/customers/{identifier}.put``, ``batch`` is ``paths./api/v2/batch.post``,
``getRegion`` is ``paths./api/v1/accounts/region.get``. Nothing here comes from cio-sync's own
code: the emulator is an oracle, so a limit that is wrong on the client's side must not be wrong
here too. Where the spec says nothing, the choice is the emulator's, named in :class:`Choices`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

# -- paths --------------------------------------------------------------------------------------

REGION_PATH = "/api/v1/accounts/region"  # getRegion
PEOPLE_PREFIX = "/api/v1/customers/"  # identify: the identifier is the one path segment after it
BATCH_PATH = "/api/v2/batch"  # batch
# batch.requestBody: person items identify_person, person_delete, person_suppress and
# person_unsuppress, by their ``action`` (the others, events and devices, are not modelled).
BATCH_ACTIONS = ("identify", "delete", "suppress", "unsuppress")


def person_action(method: str, rest: str) -> str | None:
    """Which v1 operation on a person ``method`` on ``/api/v1/customers/{rest}`` is: identify
    (PUT {identifier}), delete (DELETE {identifier}), suppress or unsuppress (POST
    {identifier}/suppress, /unsuppress); None for anything else (a 404)."""
    segment, slash, tail = rest.partition("/")
    if not slash:  # an empty identifier is identify's to refuse, with a 400
        return {"PUT": "identify", "DELETE": "delete"}.get(method)
    return tail if segment and method == "POST" and tail in ("suppress", "unsuppress") else None


class Endpoint(str, Enum):
    """The operations the emulator serves; ``ANY`` scopes a fault to all of them."""

    ANY = "any"
    CUSTOMERS = "customers"  # PUT /api/v1/customers/{identifier} (identify)
    BATCH = "batch"  # POST /api/v2/batch
    REGION = "region"  # GET /api/v1/accounts/region
    # The App API (see :mod:`.app`): getPeopleById and getPersonAttributes.
    APP_PEOPLE = "app-people"  # POST /v1/customers/attributes
    APP_PERSON = "app-person"  # GET /v1/customers/{customer_id}/attributes
    OTHER = "other"  # anything else: 404


# -- limits (info, "Customer limits" and "v2 API Limits") ----------------------------------------

# info, Customer limits: "ID | 150 bytes | Max length of a person's ID value".
MAX_ID_BYTES = 150
# info, Customer limits: "Attribute Name | 150 bytes".
MAX_NAME_BYTES = 150
# info, Customer limits: "Attribute Value | 1000 bytes".
MAX_VALUE_BYTES = 1000
# info, Customer limits: "Unique attributes | 300 | ... per person or Identify call".
MAX_ATTRIBUTES = 300
# batch.description: "Your batch request must be smaller than 500kb" (info, v2 API Limits, says
# "500kb or smaller"; the operation's own word, the stricter, is kept). Bytes as sent, and a kB is
# 1,000 bytes: at most 499,999.
MAX_BATCH_BYTES = 499_999
# batch.description: "Each of the requests within the batch must also be 32kb or smaller".
MAX_ITEM_BYTES = 32_000


# The message for a person who would end with more than MAX_ATTRIBUTES attributes.
PERSON_ATTRIBUTES = f"a person cannot have more than {MAX_ATTRIBUTES} attributes"


def compact_size(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON: no spaces, no ``\\u`` escapes.

    An item's size is measured this way, from what arrived: how the client spaced or escaped it
    on the wire does not count against it (a 30,000-byte item of accented text is 30,000 bytes,
    not the 90,000 its ASCII-escaped form would take).
    """
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))


def value_size(value: Any) -> int:
    """An attribute value's size against the 1000-byte limit: a string's UTF-8, else compact JSON."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    return compact_size(value)


# -- identifiers ----------------------------------------------------------------------------------


class IdKind(str, Enum):
    """How a person is named (identify's ``identifier`` parameter; batch's ``person_common.identifiers``)."""

    ID = "id"
    EMAIL = "email"
    CIO_ID = "cio_id"
    PHONE = "phone"


# components.parameters.track_customer_id: "When you reference people by cio_id, you must prefix the
# value with cio_"; schema oneOf[2].format "cio_[a-zA-Z0-9]*".
CIO_PREFIX = "cio_"


@dataclass(frozen=True)
class Identifier:
    """One identifier of one person. ``key`` is what makes two identifiers name the same person."""

    kind: IdKind
    value: str

    @property
    def key(self) -> tuple[IdKind, str]:
        # identify.description: "For workspaces using email as an identifier, email is
        # case-insensitive. The addresses person@example.com and PERSON@example.com would represent
        # the same person." Ids are compared exactly.
        return (self.kind, self.value.lower() if self.kind is IdKind.EMAIL else self.value)

    def as_path(self) -> str:
        """How a v1 path names this person (``cio_`` prefixed for a cio_id)."""
        return CIO_PREFIX + self.value if self.kind is IdKind.CIO_ID else self.value


@dataclass(frozen=True)
class Choices:
    """What the emulator does where the spec is silent; each is a switch, in Python and on the command line.

    - ``email_identifier``: whether the workspace identifies people by email. The spec makes it a
      workspace setting (track_customer_id: "may be an id, email address, or the cio_id ...
      depending on your workspace settings"; person_common.identifiers: "You can use email and phone
      only if they're enabled as identifiers"). On (default): a path value containing ``@`` names a
      person by email, and batch items may use ``{"email": ...}``. Off: such a path value is an
      ``id``, and an ``email`` identifier in a batch item is refused (207).
    - ``null_removes`` / ``empty_removes``: whether an attribute set to ``null`` / ``""`` is
      removed from the person. The spec does not say; by default both are stored as values.
    - ``spec_values``: identify's body lists attribute values as "string, integer, or boolean".
      Off (default): any JSON value is accepted and stored, as the API does in practice for
      numbers with decimals. On: a v1 value of another type is refused with 400, so a rehearsal
      shows what the letter of the spec would refuse.
    """

    email_identifier: bool = True
    null_removes: bool = False
    empty_removes: bool = False
    spec_values: bool = False


def path_identifier(value: str, choices: Choices) -> Identifier:
    """What a v1 path value names, from its shape.

    track_customer_id: "We determine the identifier type from the shape of the value, so a phone
    number in the path is treated as an id"; cio_ids carry the ``cio_`` prefix. The spec does not
    define an email's shape: a value containing ``@`` is read as one (when the workspace uses email).
    """
    if value.startswith(CIO_PREFIX):
        return Identifier(IdKind.CIO_ID, value[len(CIO_PREFIX) :])
    if choices.email_identifier and "@" in value:
        return Identifier(IdKind.EMAIL, value)
    return Identifier(IdKind.ID, value)


def item_identifier(identifiers: Any, choices: Choices) -> Identifier | Problem:
    """The identifier of a batch item, or why it is invalid.

    person_common.identifiers is a oneOf of objects requiring exactly one of ``id``, ``email``,
    ``phone``, ``cio_id`` ("You cannot pass multiple identifiers"), each a string
    (not_nullable_customer_id, not_nullable_email_address, cio_id). ``phone`` and ``email`` need the
    workspace to enable them; this emulator's workspace never identifies by phone.
    """
    if not isinstance(identifiers, dict):
        return Problem("identifiers", "identifiers must be an object")
    known = [kind for kind in IdKind if kind.value in identifiers]
    if len(known) != 1:
        return Problem("identifiers", "identifiers must hold exactly one of id, email, phone or cio_id")
    (kind,) = known
    value = identifiers[kind.value]
    if not isinstance(value, str) or not value:
        return Problem("identifiers", f"identifiers.{kind.value} must be a non-empty string")
    if kind is IdKind.PHONE or (kind is IdKind.EMAIL and not choices.email_identifier):
        return Problem("identifiers", f"{kind.value} is not enabled as an identifier in this workspace")
    return Identifier(kind, value)


# -- attributes -----------------------------------------------------------------------------------

# identify.requestBody properties and identify_person.attributes._update: "set _update:true, and
# Customer.io will _not_ create a new profile, even if the identifier in the path isn't found";
# v2: "If no person matches the identifiers, the request does nothing". A flag, not an attribute.
UPDATE_FLAG = "_update"
# identify.requestBody.properties._timestamp: "can be used to control the order of attribute
# updates when multiple requests are sent in rapid succession". An instruction, not an attribute.
TIMESTAMP = "_timestamp"
# identify.requestBody.properties.id / email: identifiers in the body "attempt to update that person".
BODY_IDENTIFIERS = (IdKind.ID, IdKind.EMAIL)

# identify.requestBody: additionalProperties oneOf string, integer, boolean; the named properties'
# own types (id, email, anonymous_id: string; created_at, _timestamp: integer; _update,
# unsubscribed: boolean; cio_subscription_preferences, cio_relationships: object).
_SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,),
    "email": (str,),
    "anonymous_id": (str,),
    "created_at": (int,),
    TIMESTAMP: (int,),
    UPDATE_FLAG: (bool,),
    "unsubscribed": (bool,),
    "cio_subscription_preferences": (dict,),
    "cio_relationships": (dict,),
}


@dataclass(frozen=True)
class Problem:
    """Why the API refuses a request or an item: the offending field and the message."""

    field: str
    message: str


def check_id(value: str) -> Problem | None:
    """The identifier limits: not empty, at most 150 bytes (info, Customer limits)."""
    if not value:
        return Problem("identifier", "id attribute cannot be an empty string")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return Problem("identifier", f"id cannot be longer than {MAX_ID_BYTES} bytes")
    return None


def check_attributes(attributes: Any, choices: Choices, *, v1: bool) -> Problem | None:
    """Why a person's attributes would be refused with 400 (v1) or a 207 item error (batch), or None."""
    if not isinstance(attributes, dict):
        return Problem("attributes", "attributes must be a JSON object")
    if len(attributes) > MAX_ATTRIBUTES:
        return Problem("attributes", f"cannot identify more than {MAX_ATTRIBUTES} attributes in one request")
    for name, value in attributes.items():
        if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            return Problem(name, f"attribute name cannot be longer than {MAX_NAME_BYTES} bytes")
        if value_size(value) > MAX_VALUE_BYTES:
            return Problem(name, f"value for attribute '{name}' cannot be longer than {MAX_VALUE_BYTES} bytes")
        if v1 and choices.spec_values and not _spec_type(name, value):
            return Problem(name, f"value for attribute '{name}' must be a string, an integer or a boolean")
    return None


def _spec_type(name: str, value: Any) -> bool:
    allowed = _SPEC_TYPES.get(name, (str, int, bool))
    if isinstance(value, bool):
        return bool in allowed
    return isinstance(value, allowed)


# -- answers --------------------------------------------------------------------------------------

# components.responses.401.description (identify, batch and getRegion all answer it).
UNAUTHORIZED = "Unauthorized request. Make sure that you provided the right credentials."

# getRegion 200: url is one of these two, region one of "us", "eu"; environment_id an integer.
REGION_URLS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}


def region_answer(region: str, environment_id: int) -> dict[str, Any]:
    """getRegion's 200 body."""
    return {"url": REGION_URLS[region], "region": region, "environment_id": environment_id}


def success() -> dict[str, Any]:
    """components.responses.200: "A successful request returns an empty object response"."""
    return {}


def error_body(endpoint: Endpoint, problem: Problem) -> dict[str, Any]:
    """An error answer's body in the shape the endpoint's spec gives.

    v1 (identify lists no 400 of its own; the v1 operations that do share components.responses.400):
    ``{"meta": {"errors": [string]}}``. v2 (batch 400): ``{"errors": [{"reason", "field",
    "message"}]}`` (components.schemas.errors).
    """
    if endpoint is Endpoint.BATCH:
        return {"errors": [{"reason": "invalid", "field": problem.field, "message": problem.message}]}
    return {"meta": {"errors": [problem.message]}}


def item_error(index: int, problem: Problem) -> dict[str, Any]:
    """One entry of batch's 207 ``errors``: integer ``batch_index`` and string reason, field, message."""
    return {"batch_index": index, "reason": "invalid", "field": problem.field, "message": problem.message}


def partial_failure(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """batch 207: "At least one object in the batch was invalid; all other requests are accepted"."""
    return {"errors": errors}
