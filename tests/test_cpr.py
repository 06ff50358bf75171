"""CPR numbers: the century rule, substitute numbers, ages and pseudonyms."""

from datetime import date

import pytest

from casehistory.domain.cpr import InvalidCpr, age_on, birth_date, citizen_key


@pytest.mark.parametrize(
    ("cpr", "born"),
    [
        ("0101901234", date(1990, 1, 1)),  # 7th digit 0-3: 1900s
        ("0101363999", date(1936, 1, 1)),
        ("0101364999", date(2036, 1, 1)),  # 4 and 9: 2000s if YY <= 36
        ("0101374999", date(1937, 1, 1)),
        ("0101579999", date(1957, 1, 1)),  # 9 with YY > 36: 1900s
        ("0101575000", date(2057, 1, 1)),  # 5-8: 2000s if YY <= 57
        ("0101585000", date(1858, 1, 1)),  # else 1800s
        ("6101901234", date(1990, 1, 1)),  # substitute: day + 60
        ("8912851234", date(1985, 12, 29)),
        ("2902004000", date(2000, 2, 29)),
    ],
)
def test_birth_date(cpr: str, born: date) -> None:
    assert birth_date(cpr) == born


@pytest.mark.parametrize(
    "cpr",
    [
        "2902001234",
        "3002901234",
        "0013901234",
        "123456789",
        "12345678901",
        "01019O1234",
        "9201901234",
        "０１０１９０１２３４",
    ],
)
def test_invalid(cpr: str) -> None:
    with pytest.raises(InvalidCpr):
        birth_date(cpr)


def test_age_of_someone_born_on_29_february() -> None:
    born = date(2000, 2, 29)
    assert age_on(born, date(2025, 2, 28)) == 24
    assert age_on(born, date(2025, 3, 1)) == 25
    assert age_on(born, date(2024, 2, 29)) == 24


def test_pseudonym_is_keyed_and_stable() -> None:
    assert citizen_key("6101901234", b"k1") == citizen_key("6101901234", b"k1")
    assert citizen_key("6101901234", b"k1") != citizen_key("6101901234", b"k2")
    assert "6101901234" not in citizen_key("6101901234", b"k1")
    assert len(citizen_key("6101901234", b"k1")) == 32
