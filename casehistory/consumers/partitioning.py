"""Which partition of a topic a key goes to, as Kafka's default partitioner chooses it.

Producers partition a keyed record by the murmur2 hash of its key (the Java client's
`Utils.murmur2`, positive, modulo the topic's partitions). kafka-python computes it
byte by byte in Python, a few microseconds per record; the router sends every event,
so it computes the same hash here a word at a time and names the partition itself.
`tests/test_partitioning.py` holds it equal to kafka-python's.
"""

from __future__ import annotations

import struct
from functools import cache

_SEED, _M, _MASK = 0x9747B28C, 0x5BD1E995, 0xFFFFFFFF


@cache
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """MurmurHash2 (32 bits, Kafka's seed) of `data`, unsigned."""
    whole = len(data) & ~3
    h = _SEED ^ len(data)
    for k in _words(whole // 4).unpack_from(data):
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ (((k ^ (k >> 24)) * _M) & _MASK)
    if whole < len(data):  # the last 1-3 bytes, little-endian
        h = ((h ^ int.from_bytes(data[whole:], "little")) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: int) -> int:
    """The partition (of `partitions`, numbered from 0) Kafka's default partitioner gives `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
