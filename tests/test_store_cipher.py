"""The store cipher writes and reads the same bytes as eventsourcing's AESCipher."""

from __future__ import annotations

import base64
import os

import pytest
from eventsourcing.cryptography import AESCipher
from eventsourcing.utils import Environment

from casehistory.store_cipher import StoreCipher


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
