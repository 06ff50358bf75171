"""Fuzzing the engine's edge: the wire decoder and the contract validator.

Inputs come from a seeded PRNG, so a failure replays from its seed:
- random bytes, half of them behind a valid single-object header;
- valid records' wire encodings, mutated (bytes flipped, cut, inserted, dropped);
- valid records (JSON form) with fields set to edge values: wrong types, empty and
  huge strings, sentinel and out-of-range dates, dates given as timestamps, naive
  and extreme timestamps, unknown codes, lone surrogates, fields left out.

`check` holds what must be true of every input: decoding yields a record or
raises `UndecodableMessage`, nothing else; validation yields a `ContractEvent`
or a `Rejection` with a known reason whose message never repeats the CPR; an
accepted event builds its fact and content hash and survives the wire unchanged.
The tests run about 100,000 inputs; this script runs as many as asked:

    .venv/bin/python -m bench.fuzz --inputs 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from functools import cache
from typing import Any

from casehistory.population import generator
from casehistory.schemas import wire
from casehistory.schemas.contract import REJECTION_REASONS, ContractEvent, Rejection, validate

Input = bytes | dict[str, Any]
"""Wire bytes (the Kafka path) or a decoded JSON record (the file path)."""

EDGE_VALUES: list[Any] = [
    None, "", " ", "\x00", "\ud800", "é", "x" * 5000, 0, -1, 2**63, -(2**63) - 1, 1.5,
    float("nan"), float("inf"), True, False, [], {}, ["101"], {"a": 1},
    "0001-01-01", "9999-12-31", "1899-12-31", "1900-01-01", "2099-12-31", "2100-01-01",
    "2020-02-30", "2020-13-01", "20200101", "2015-03-01T00:00:00Z", "2015-03-01 00:00:00",
    "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00",
    "2020-01-01T10:00:00", "2020-01-01T10:00:00.123456Z", "2020-01-01T10:00:00+14:00",
    "2020-01-01T10:00:00-23:59", "1970-01-01T00:00:00Z", "0000000000", "3102901234",
    "6113901234", "610190123", "61019012345", "6101901234 ", "٦١٠١٩٠١٢٣٤", "101", "000", "999",
    "101 ", "kontanthjaelp", "KONTANTHJAELP", "job", "reform", "aktivitetsparat", "visitation",
    "BenefitStarted", "benefitstarted", "00000000-0000-0000-0000-000000000000",
    "not-a-uuid", "{00000000-0000-4000-8000-000000000001}", "1234567890",
]
"""Values every field is tried with, whatever its type."""

FIELDS = [
    "event_id", "event_type", "cpr", "effective_date", "recorded_at", "source_system",
    "municipality", "source_case_ref", "benefit", "target_group", "reason",
    "from_municipality", "to_municipality", "from_group", "to_group", "intervention",
    "retracted_event_id", "migration_batch", "caseworker", "unit", "meeting_kind", "unknown",
]


@cache
def valid_pool() -> tuple[list[dict[str, Any]], list[bytes]]:
    """Valid records of a generated municipality, and their wire encodings."""
    records = []
    for candidate in generator.generate_population(150, seed=99):
        checked = validate(candidate)
        if isinstance(checked, ContractEvent):
            records.append(dict(candidate))
    encodings = []
    for r in records:
        event = validate(r)
        assert isinstance(event, ContractEvent)
        encodings.append(wire.encode(event.avro_datum()))
    return records, encodings


def random_bytes(rng: random.Random) -> bytes:
    body = rng.randbytes(rng.randrange(0, 160))
    if rng.random() < 0.5:
        _, encodings = valid_pool()
        return rng.choice(encodings)[: wire.HEADER_SIZE] + body
    return body


def mutated_encoding(rng: random.Random) -> bytes:
    _, encodings = valid_pool()
    data = bytearray(rng.choice(encodings))
    for _ in range(rng.randrange(1, 5)):
        where = rng.randrange(0, len(data) + 1)
        action = rng.randrange(5)
        if action == 0 and where < len(data):
            data[where] ^= 1 << rng.randrange(8)
        elif action == 1 and where < len(data):
            data[where] = rng.randrange(256)
        elif action == 2:
            data[where:where] = rng.randbytes(rng.randrange(1, 9))
        elif action == 3:
            del data[where : where + rng.randrange(1, 9)]
        else:
            del data[where:]
    return bytes(data)


def edge_record(rng: random.Random) -> dict[str, Any]:
    records, _ = valid_pool()
    data = dict(rng.choice(records))
    for _ in range(rng.randrange(1, 4)):
        name = rng.choice(FIELDS)
        if rng.random() < 0.15:
            data.pop(name, None)
        else:
            data[name] = rng.choice(EDGE_VALUES)
    return data


def inputs(seed: int, count: int) -> Iterator[Input]:
    """`count` inputs of all three kinds, from `seed`."""
    rng = random.Random(seed)
    makers = (random_bytes, mutated_encoding, edge_record)
    for _ in range(count):
        yield rng.choice(makers)(rng)


KNOWN_REASONS = REJECTION_REASONS | {"invalid_field"}
"""The validator also gives `invalid_field` (for a field without its own reason, such as
`migration_batch`), which `REJECTION_REASONS` does not list (reported, issue #15)."""


def check(item: Input) -> str:
    """What becomes of one input (`accepted` or the rejection reason); raises if a rule breaks."""
    if isinstance(item, bytes):
        try:
            record: object = wire.decode(item)[0]
        except wire.UndecodableMessage:
            return "undecodable"
    else:
        record = item
    checked = validate(record)
    if isinstance(checked, Rejection):
        assert checked.reason in KNOWN_REASONS, checked
        cpr = record.get("cpr") if isinstance(record, dict) else None
        if isinstance(cpr, str) and sum(c.isdigit() for c in cpr) >= 6:  # could be a CPR
            assert cpr.strip() not in checked.message, "a rejection repeats the CPR"
        return checked.reason
    checked.to_fact()
    again = validate(wire.decode(wire.encode(checked.avro_datum()))[0])
    assert isinstance(again, ContractEvent), again
    assert again.content_hash() == checked.content_hash(), "changed on the wire"
    return "accepted"


def run(seed: int, count: int) -> Counter[str]:
    return Counter(check(item) for item in inputs(seed, count))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    valid_pool()
    started = time.perf_counter()
    outcomes: Counter[str] = Counter()
    chunk = 100_000
    for first in range(0, args.inputs, chunk):
        outcomes += run(args.seed * 1_000_003 + first, min(chunk, args.inputs - first))
        elapsed = time.perf_counter() - started
        done = first + min(chunk, args.inputs - first)
        print(f"{done:>10,} inputs, {elapsed:6.1f} s", flush=True)
    total = sum(outcomes.values())
    print(json.dumps({"inputs": total, "seconds": round(time.perf_counter() - started, 1),
                      "outcomes": dict(outcomes.most_common())}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
