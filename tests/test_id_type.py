"""idType: what the id names, the same way through v1 and batch, to the same person."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cio_sync.emulator import Emulator
from cio_sync.input.config import IdType, config_from_dict
from cio_sync.input.csvfile import CsvRow
from cio_sync.input.mapping import PersonUpdate, RecordMapper

from .conftest import API_KEY, SITE_ID, Files, Run, config_dict, run_cli

Profile = tuple[str | None, str | None, dict[str, Any]]


@pytest.fixture
def pair() -> Iterator[tuple[Emulator, Emulator]]:
    """Two workspaces: one for each transport."""
    with Emulator(SITE_ID, API_KEY) as v1, Emulator(SITE_ID, API_KEY) as batch:
        yield v1, batch


def run(emulator: Emulator, files: Files, transport: str, records: object, **config: Any) -> Run:
    document = config_dict(emulator.url, transport=transport, mappings=[{"from": "name", "to": "name"}], **config)
    return run_cli(["--config", files.config(document, f"{transport}.json"), "--data", files.data(records)])


def profiles(emulator: Emulator) -> list[Profile]:
    """Every person as (id, email, attributes): the identifiers that say who they are."""
    return sorted(((p.id, p.email, p.attributes) for p in emulator.workspace.profiles()), key=repr)


def identifiers(emulator: Emulator) -> list[Any]:
    return [item["identifiers"] for r in emulator.requests() if r.method == "POST" for item in r.body["batch"]]


def paths(emulator: Emulator) -> list[str | None]:
    return [r.person_id for r in emulator.requests() if r.method == "PUT"]


def both(pair: tuple[Emulator, Emulator], files: Files, records: object, **config: Any) -> tuple[Run, Run]:
    v1, batch = pair
    return run(v1, files, "v1", records, **config), run(batch, files, "batch", records, **config)


def test_id_reaches_the_same_person_by_id(pair: tuple[Emulator, Emulator], files: Files) -> None:
    records = [{"id": "u-1", "name": "Ada"}, {"id": 42, "name": "Int"}, {"id": "U-1", "name": "Other case"}]
    first, second = both(pair, files, records, idType="id")
    assert first.code == second.code == 0, (first.stderr, second.stderr)
    v1, batch = pair
    assert profiles(v1) == profiles(batch)
    assert profiles(v1) == sorted(
        [("u-1", None, {"name": "Ada"}), ("42", None, {"name": "Int"}), ("U-1", None, {"name": "Other case"})], key=repr
    )
    assert identifiers(batch) == [{"id": "u-1"}, {"id": "42"}, {"id": "U-1"}]


def test_an_id_that_v1_would_read_as_another_kind_is_refused_on_v1_only(
    pair: tuple[Emulator, Emulator], files: Files
) -> None:
    records = [
        {"id": "ada@example.com", "name": "Ada"},
        {"id": "cio_abc", "name": "Prefixed"},
        {"id": "u", "name": "U"},
    ]
    first, second = both(pair, files, records, idType="id")
    v1, batch = pair
    assert first.code == 1
    assert (
        'record 0 (id "ada@example.com"): invalid: the v1 API would read the id "ada@example.com" as an email '
        'address; use "transport": "batch" to send it as an id'
    ) in first.stderr
    assert 'record 1 (id "cio_abc"): invalid: the v1 API would read the id "cio_abc" as a cio_id' in first.stderr
    assert paths(v1) == ["u"]
    assert second.code == 0, second.stderr
    assert identifiers(batch) == [{"id": "ada@example.com"}, {"id": "cio_abc"}, {"id": "u"}]
    assert profiles(batch) == sorted(
        [
            ("ada@example.com", None, {"name": "Ada"}),
            ("cio_abc", None, {"name": "Prefixed"}),
            ("u", None, {"name": "U"}),
        ],
        key=repr,
    )


def test_an_email_address_beginning_with_cio_is_refused_on_v1_and_sent_on_batch(
    pair: tuple[Emulator, Emulator], files: Files
) -> None:
    # v1 reads a path beginning "cio_" as a cio_id, whatever follows: the write would reach no one,
    # and the run would say it synced.
    first, second = both(pair, files, [{"id": "cio_ann@x.com", "name": "Ann"}, {"id": "u", "name": "U"}])
    v1, batch = pair
    assert first.code == 1
    assert (
        'record 0 (id "cio_ann@x.com"): invalid: the v1 API would read the email address "cio_ann@x.com" as a cio_id'
        in first.stderr
    )
    assert paths(v1) == ["u"]
    assert second.code == 0, second.stderr
    assert profiles(batch) == sorted([(None, "cio_ann@x.com", {"name": "Ann"}), ("u", None, {"name": "U"})], key=repr)


def test_email_reaches_the_same_person_by_email_whatever_the_case(
    pair: tuple[Emulator, Emulator], files: Files
) -> None:
    records = [{"id": "Ada@Example.com", "name": "Ada"}, {"id": "ada@example.COM", "name": "Ada again"}]
    first, second = both(pair, files, records, idType="email")
    assert first.code == second.code == 0, (first.stderr, second.stderr)
    v1, batch = pair
    assert profiles(v1) == profiles(batch) == [(None, "Ada@Example.com", {"name": "Ada again"})]
    # One write, merged, naming the person as their first record does.
    assert identifiers(batch) == [{"email": "Ada@Example.com"}]
    assert paths(v1) == ["Ada@Example.com"]


def test_email_without_at_is_refused_on_both(pair: tuple[Emulator, Emulator], files: Files) -> None:
    records = [{"id": "not-an-address", "name": "X"}, {"id": "b@x.io", "name": "B"}]
    first, second = both(pair, files, records, idType="email")
    reason = 'record 0 (id "not-an-address"): invalid: "not-an-address" is not an email address (no "@")'
    for result in (first, second):
        assert result.code == 1
        assert reason in result.stderr
    v1, batch = pair
    assert profiles(v1) == profiles(batch) == [(None, "b@x.io", {"name": "B"})]


@pytest.mark.parametrize("written", ["1f2e", "cio_1f2e"])
def test_cio_id_reaches_the_existing_person(pair: tuple[Emulator, Emulator], files: Files, written: str) -> None:
    for emulator in pair:
        emulator.add_person(id="p-1", cio_id="1f2e", attributes={"plan": "pro"})
    first, second = both(pair, files, [{"id": written, "name": "Ada"}], idType="cio_id")
    assert first.code == second.code == 0, (first.stderr, second.stderr)
    v1, batch = pair
    assert profiles(v1) == profiles(batch) == [("p-1", None, {"plan": "pro", "name": "Ada"})]
    assert paths(v1) == ["cio_1f2e"]
    assert identifiers(batch) == [{"cio_id": "1f2e"}]


def test_a_cio_id_that_is_not_letters_and_digits_is_refused(pair: tuple[Emulator, Emulator], files: Files) -> None:
    first, second = both(pair, files, [{"id": "cio_1f-2e", "name": "Ada"}, {"id": "", "name": "x"}], idType="cio_id")
    for result in (first, second):
        assert result.code == 1
        assert '"cio_1f-2e" is not a cio_id (letters and digits, with or without "cio_" before them)' in result.stderr
    assert [r for emulator in pair for r in emulator.requests() if r.method != "GET"] == []


def test_auto_guesses_from_the_shape_the_same_way_for_both(pair: tuple[Emulator, Emulator], files: Files) -> None:
    for emulator in pair:
        emulator.add_person(id="p-9", cio_id="9a", attributes={})
    records = [{"id": "u-1", "name": "Id"}, {"id": "Bo@x.io", "name": "Email"}, {"id": "cio_9a", "name": "Cio"}]
    first, second = both(pair, files, records)
    assert first.code == second.code == 0, (first.stderr, second.stderr)
    v1, batch = pair
    assert profiles(v1) == profiles(batch)
    assert identifiers(batch) == [{"id": "u-1"}, {"email": "Bo@x.io"}, {"cio_id": "9a"}]


def test_the_batch_dry_run_shows_the_identifier(emulator: Emulator, files: Files) -> None:
    result = run(emulator, files, "batch", [{"id": "a@b.io", "name": "A"}], idType="id")
    assert result.code == 0
    dry = run_cli(
        [
            "--config",
            files.config(config_dict(emulator.url, transport="batch", idType="id"), "dry.json"),
            "--data",
            files.data([{"id": "a@b.io", "name": "A"}]),
            "--dry-run",
        ]
    )
    assert '"identifiers":{"id":"a@b.io"}' in dry.stderr


def test_changing_the_id_type_resends_everyone(emulator: Emulator, files: Files) -> None:
    state = str(files.root / "state.db")
    records = [{"id": "a@b.io", "name": "A"}]
    document = config_dict(emulator.url, transport="batch")
    args = ["--data", files.data(records), "--state", state]
    assert run_cli(["--config", files.config(document), *args]).code == 0
    again = run_cli(["--config", files.config({**document, "idType": "email"}, "email.json"), *args])
    assert again.code == 0
    assert "made for another workspace or configuration" in again.stderr
    assert len([r for r in emulator.requests() if r.method == "POST"]) == 2


@pytest.mark.parametrize("id_text", ["cio_", "cio_a-b", "cio_é1", "cio_ 1"])
@pytest.mark.parametrize("transport", ["v1", "batch"])
def test_an_id_that_reads_as_a_cio_id_but_is_not_one_is_invalid(
    emulator: Emulator, files: Files, id_text: str, transport: str
) -> None:
    # Sent, it would name a cio_id no one has: the run would report it synced, and no one hold it.
    run_ = run(emulator, files, transport, [{"id": id_text, "name": "x"}, {"id": "cio_ab12", "name": "y"}])
    assert run_.code == 1
    assert f'(id "{id_text}"): invalid: "{id_text}" begins with "cio_", so the API reads it as a cio_id' in run_.stderr
    assert [r.person_id for r in emulator.requests() if r.method != "GET"] in (["cio_ab12"], [None])


@given(st.text(alphabet="cio_aZ9-@. é", max_size=8), st.sampled_from(["v1", "batch"]))
def test_the_person_index_names_whom_the_mapping_names(id_text: str, transport: str) -> None:
    # The check pass counts people by RecordMapper.person_key, the records pass by map(): they must
    # agree on every id, or a person's merge waits for a record that never comes.
    config = config_from_dict(config_dict("http://127.0.0.1:9", transport=transport))
    mapper = RecordMapper.for_config(config)
    record = {"id": id_text, "name": "x"}
    mapped = mapper.map(0, record)
    assert mapper.person_key(record) == (mapped.key if isinstance(mapped, PersonUpdate) else None)


# Runs of records whose ids are all of one kind (those the quicker way takes on), some with one
# odd record among them: ids near every limit (length, "@", "cio_", empty, not ASCII).
_ID_KINDS: list[st.SearchStrategy[object]] = [
    st.integers(min_value=-(10**151), max_value=10**151),
    st.integers(min_value=10**149, max_value=10**151),
    st.integers(min_value=-(10**150), max_value=-(10**148)),
    st.integers(min_value=-1000, max_value=10**6),
    st.text(alphabet="aZ9-.\n", max_size=8),
    st.text(alphabet="aZ@", min_size=1, max_size=4),
    st.builds(lambda tail: "cio_" + tail, st.text(alphabet="ab1-_", max_size=3)),
    st.text(alphabet="0123456789", min_size=145, max_size=155),
    st.text(alphabet="é", min_size=72, max_size=80),
]
_ODD = st.sampled_from(
    [
        *({"id": i} for i in ("", "cio_", "cio_a1", "A@B.com", "\ud800", True, None, 1.5)),
        *({"name": "no id"}, None, 7, "text", ["id"]),
    ]
)


@st.composite
def _runs(draw: st.DrawFn) -> list[object]:
    kind: st.SearchStrategy[object] = draw(st.sampled_from(_ID_KINDS))
    ids: list[object] = draw(st.lists(kind, min_size=8, max_size=24))
    records: list[object] = [{"id": i, "name": "x"} for i in ids]
    odd: bool = draw(st.booleans())
    if odd:
        records.insert(draw(st.integers(0, len(records))), draw(_ODD))
    return records


@given(_runs(), st.sampled_from([IdType.AUTO] * len(IdType) + list(IdType)))
def test_a_runs_keys_are_its_records_keys_one_by_one(records: list[object], id_type: IdType) -> None:
    # The check pass keys a run of records at once, a quicker way for ids that need no closer
    # look: it must name exactly whom person_key names, record by record.
    mapper = _batch_mapper(id_type)
    assert list(mapper.person_keys(records)) == [mapper.person_key(record) for record in records]


@functools.cache
def _batch_mapper(id_type: IdType) -> RecordMapper:
    config = config_from_dict(config_dict("http://127.0.0.1:9", transport="batch", idType=id_type.value))
    return RecordMapper.for_config(config)


# Kinds of values near every line map_run draws, one kind a run (so that whole runs take the quick
# way): the types orjson writes as they are and those it does not, integers about 64 bits, numbers
# that are tiny or huge, strings near the value limit (escaped or not), a lone surrogate, nesting.
_VALUE_KINDS: list[st.SearchStrategy[object]] = [
    st.none() | st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.integers(min_value=-100, max_value=100),
    st.sampled_from([Decimal("1.5"), Decimal("1e-400"), Decimal("1e400"), Decimal("0.0"), Decimal("-0")]),
    st.floats(allow_nan=True),
    st.text(alphabet='a"\\\n\x01é\ud800', max_size=6),
    st.text(alphabet="ab", max_size=6),
    st.builds(lambda n, c: c * n, st.integers(240, 1010), st.sampled_from(["a", '"', "é", "\x01"])),
    st.lists(st.integers(0, 3), max_size=2) | st.dictionaries(st.just("k"), st.just(1)),
]


# Ids the quick way takes (all of one kind in a run), drawn as often as all the others together.
_PLAIN_IDS: list[st.SearchStrategy[object]] = [st.integers(-(10**6), 10**6), st.text("aZ9-_", min_size=1, max_size=9)]


@st.composite
def _mapped_runs(draw: st.DrawFn) -> list[object]:
    if draw(st.booleans()):
        ids = draw(st.lists(draw(st.sampled_from(_PLAIN_IDS)), min_size=8, max_size=24))
        records: list[object] = [{"id": i} for i in ids]
    else:
        records = draw(_runs())
    values = draw(st.sampled_from(_VALUE_KINDS))
    keys = draw(st.sampled_from([("name",), ("plan",), ("name", "plan")]))
    for record in records:
        if isinstance(record, dict):
            for key in keys:
                if draw(st.integers(0, 9)):  # mostly there
                    record[key] = draw(values)
    if draw(st.integers(0, 4)) == 0:  # as a CSV file's rows: text, or None for an empty cell
        return [
            CsvRow({k: v if v is None else str(v) for k, v in r.items()}) if isinstance(r, dict) else r for r in records
        ]
    return records


_MAPPINGS = [
    [{"from": "name", "to": "name"}, {"from": "plan", "to": "plan"}],
    [{"from": "name", "to": "name", "skipNull": True}],
    [{"from": "plan", "to": "plan", "as": "string"}],
    [{"from": "name", "to": "name"}, {"value": 1, "to": "tier"}],
]


@given(
    _mapped_runs(),
    st.sampled_from(_MAPPINGS),
    st.sampled_from(["batch", "v1"]),
    st.sampled_from(["upsert", "update"]),
    st.integers(0, 10**6),
)
def test_a_run_maps_as_its_records_one_by_one(
    records: list[object], mappings: list[dict[str, Any]], transport: str, mode: str, first: int
) -> None:
    # The records are mapped a run at a time, a quicker way for plain runs: each must come out
    # exactly as map makes it, the same update or the same reason, at the same index.
    document = config_dict("http://127.0.0.1:9", transport=transport, mappings=mappings, mode=mode)
    mapper = RecordMapper.for_config(config_from_dict(document))
    assert mapper.map_run(first, records) == [mapper.map(first + i, r) for i, r in enumerate(records)]


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        1e16,
        2**63,
        2**64,
        -(2**64),
        Decimal("1e-400"),
        Decimal("1e400"),
        "a" * 1000,
        "a" * 1001,
        '"' * 300,
        "é" * 501,
        "\ud800",
        [1, [2]],
        {"k": Decimal("0.1")},
        True,
        None,
        "},{",
        '},{"',
        "\\",
    ],
    ids=repr,
)
@pytest.mark.parametrize("empty", [False, True])
def test_one_value_in_a_plain_run_is_mapped_as_alone(value: object, empty: bool) -> None:
    # One value among plain ones, each near a line the quick way draws: the run maps as its
    # records do one by one (valid or not, and in the same bytes); also beside a record that
    # sets no attribute at all.
    mapper = RecordMapper.for_config(config_from_dict(config_dict("http://127.0.0.1:9", mappings=_MAPPINGS[0])))
    records: list[object] = [{"id": f"p{i}", "name": "x", "plan": i} for i in range(9)]
    records[4] = {"id": "p4", "name": value}
    if empty:
        records[6] = {"id": "p6"}
    assert mapper.map_run(3, records) == [mapper.map(3 + i, r) for i, r in enumerate(records)]


def test_a_plain_run_is_mapped_the_quick_way(monkeypatch: pytest.MonkeyPatch) -> None:
    # The property above holds whichever way a run is mapped: this holds that a plain run takes
    # the quick way, without mapping its records one by one, or it would never be tried.
    mapper = _batch_mapper(IdType.AUTO)
    records: list[object] = [{"id": i, "name": f"n{i}", "computed_ltv": Decimal("2.5")} for i in range(10)]
    mapped = mapper.map_run(0, records)
    assert [w.body if isinstance(w, PersonUpdate) else w for w in mapped] == [
        b'{"name":"n%d","ltv":2.5}' % i for i in range(10)
    ]
    monkeypatch.setattr(RecordMapper, "map", None)
    assert mapper.map_run(0, records) == mapped
