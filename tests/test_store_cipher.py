"""The store cipher writes and reads the same bytes as eventsourcing's AESCipher."""

from __future__ import annotations

import base64
import os

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from casehistory.store_cipher import NONCE, NONCES_PER_DRAW, StoreCipher, random_nonce


def environment(key: bytes) -> Environment:
    return Environment(env={"CIPHER_KEY": base64.b64encode(key).decode("ascii")})


@pytest.mark.parametrize("size", [0, 1, 27, 28, 4096])
def test_each_cipher_reads_what_the_other_wrote(size: int) -> None:
    env = environment(os.urandom(32))
    ours, theirs = StoreCipher(env), AESCipher(env)
    plaintext = os.urandom(size)
    assert theirs.decrypt(ours.encrypt(plaintext)) == plaintext
    assert ours.decrypt(theirs.encrypt(plaintext)) == plaintext


def test_every_encryption_takes_a_fresh_nonce() -> None:
    cipher = StoreCipher(environment(os.urandom(32)))
    assert cipher.encrypt(b"same") != cipher.encrypt(b"same")


def test_damage_and_a_wrong_key_are_refused() -> None:
    cipher = StoreCipher(environment(os.urandom(32)))
    sealed = bytearray(cipher.encrypt(b"the citizen's facts"))
    sealed[-1] ^= 1
    with pytest.raises(ValueError, match="Invalid cipher tag"):
        cipher.decrypt(bytes(sealed))
    with pytest.raises(ValueError, match="too short"):
        cipher.decrypt(bytes(sealed[:27]))
    other = StoreCipher(environment(os.urandom(32)))
    with pytest.raises(ValueError, match="Invalid cipher tag"):
        other.decrypt(cipher.encrypt(b"x"))


def test_nonces_are_never_shared_between_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    def draw(_: int) -> list[bytes]:
        return [random_nonce() for _ in range(3 * NONCES_PER_DRAW)]

    with ThreadPoolExecutor(4) as pool:
        drawn = [nonce for nonces in pool.map(draw, range(4)) for nonce in nonces]
    assert all(len(nonce) == NONCE for nonce in drawn)
    assert len(set(drawn)) == len(drawn)


def test_a_forked_child_never_takes_its_parents_next_nonce() -> None:
    random_nonce()  # the pool now holds nonces drawn in this process
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(writer, random_nonce())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    from_child = os.read(reader, NONCE)
    os.close(reader)
    assert len(from_child) == NONCE
    assert from_child != random_nonce()
