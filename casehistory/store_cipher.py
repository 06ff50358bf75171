"""The event store's cipher: eventsourcing's AES-GCM layout, with the key schedule built once.

eventsourcing's `AESCipher` builds an `AESGCM` object (the key schedule) for every
event it encrypts or decrypts. `StoreCipher` keeps one for the process and writes
and reads exactly the same bytes (nonce, tag, ciphertext), so stores written with
either cipher read with the other.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.cryptography import AESCipher

NONCE, TAG = 12, 16
NONCES_PER_DRAW = 1024
_nonces: list[bytes] = []


def random_nonce() -> bytes:
    """A fresh random 96-bit nonce from the operating system's generator.

    Drawn a thousand at a time: one `getrandom` call per record released the
    interpreter's lock, and with a Kafka producer's thread busy beside it each call
    waited for the lock again (14 us a record in the router's profile). `list.pop` is
    atomic, so no two threads take the same nonce, and a forked child starts with
    none (`os.register_at_fork`), so it never repeats its parent's.
    """
    try:
        return _nonces.pop()
    except IndexError:
        block = os.urandom(NONCE * NONCES_PER_DRAW)
        _nonces.extend(block[at : at + NONCE] for at in range(0, len(block), NONCE))
        return _nonces.pop()


os.register_at_fork(after_in_child=_nonces.clear)


class StoreCipher(AESCipher):
    """AES-GCM with a 96-bit random nonce; stored as nonce + tag + ciphertext."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._aesgcm = AESGCM(self.key)

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = random_nonce()
        sealed = self._aesgcm.encrypt(nonce, plaintext, None)
        return nonce + sealed[-TAG:] + sealed[:-TAG]

    def decrypt(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) < NONCE + TAG:
            raise ValueError("Damaged cipher text: too short")
        nonce, tag = ciphertext[:NONCE], ciphertext[NONCE : NONCE + TAG]
        try:
            return self._aesgcm.decrypt(nonce, ciphertext[NONCE + TAG :] + tag, None)
        except InvalidTag as error:
            raise ValueError("Invalid cipher tag") from error
