"""CPR numbers: validity, birth date, age, and the keyed pseudonym that replaces them.

A CPR number is DDMMYY + 4 digits; the 7th digit gives the century. Substitute
numbers (erstatningspersonnummer) add 60 to the day. There is no modulus-11 check.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date


class InvalidCpr(ValueError):
    """The text is not an ordinary or substitute CPR number with a real birth date."""


def _century(digit7: int, yy: int) -> int:
    if digit7 <= 3:
        return 1900
    if digit7 in (4, 9):
        return 2000 if yy <= 36 else 1900
    return 2000 if yy <= 57 else 1800


def birth_date(cpr: str) -> date:
    """The birth date a CPR number encodes, or `InvalidCpr`."""
    if len(cpr) != 10 or not cpr.isascii() or not cpr.isdigit():
        raise InvalidCpr("a CPR number is exactly 10 digits")
    day, month, yy, digit7 = int(cpr[0:2]), int(cpr[2:4]), int(cpr[4:6]), int(cpr[6])
    if day > 60:
        day -= 60
    try:
        return date(_century(digit7, yy) + yy, month, day)
    except ValueError as error:
        raise InvalidCpr(f"no such birth date: {error}") from None


def age_on(born: date, day: date) -> int:
    """Whole years; someone born on 29 February ages on 1 March in other years."""
    before_birthday = (day.month, day.day) < (born.month, born.day)
    return day.year - born.year - int(before_birthday)


def citizen_key(cpr: str, pseudonym_key: bytes) -> str:
    """The keyed pseudonym of a CPR number: 32 hex digits, stable for one key.

    HMAC-SHA256 truncated to 128 bits, so it also serves as the aggregate's UUID.
    Without the key it cannot be reversed by enumerating the CPR space.
    """
    return hmac.new(pseudonym_key, cpr.encode("ascii"), hashlib.sha256).hexdigest()[:32]
