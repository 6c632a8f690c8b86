"""Row validation: the email fast path must agree with email-validator on every address."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from breachflow.flows.assess.population import (
    normalize_email,
    normalize_locale,
    normalize_phone,
    residence,
)

ADDRESSES = [
    "a@example.com", "A.B@Example.COM", "a+tag@sub.example.co.uk", "u@123.com", "u@ex.am.ple",
    "a..b@x.com", ".a@x.com", "a.@x.com", "a@x", "a@-x.com", "a@x..com", "a b@x.com",
    '"quoted"@x.com', "josé@x.com", "a@xn--bcher-kva.ch", "a@bücher.ch", "x" * 65 + "@x.com",
    "a@" + "b" * 250 + ".com", "a@localhost", "a@[1.2.3.4]", "a@EXAMPLE.com ", "user@exam_ple.com",
    "no-at-sign", "@x.com", "a@", "a@@x.com", "a@x.com.", "O'Brien@example.ie",
]  # fmt: skip


def library(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError:
        return None


@pytest.mark.parametrize("address", ADDRESSES)
def test_email_normalization_matches_email_validator(address: str) -> None:
    """The per-domain cache is only a shortcut: the verdict is the library's, twice over."""
    for _ in range(2):  # second time through the cache
        normalized, problem = normalize_email(address)
        assert normalized == library(address)
        assert (problem is None) == (normalized is not None)


def test_phone_numbers_become_e164_with_their_region() -> None:
    assert normalize_phone("139 1234 5678", "CN") == ("+8613912345678", "CN", None)
    assert normalize_phone("+1 415 555 2671", None) == ("+14155552671", "US", None)
    assert normalize_phone("12", "US")[2] is not None


def test_locales_are_cased_as_bcp_47_and_unusable_ones_fall_back() -> None:
    assert normalize_locale("zh_cn", "en") == ("zh-CN", None)
    assert normalize_locale("zh-hans-cn", "en") == ("zh-Hans-CN", None)
    assert normalize_locale("", "en") == ("en", None)
    fallback, problem = normalize_locale("not a locale!", "en")
    assert fallback == "en" and problem


@pytest.mark.parametrize(
    ("country", "region", "expected", "warned"),
    [
        ("us", "ca", ("US", "US-CA"), None),
        ("", "US-NY", ("US", "US-NY"), None),
        ("CN", "CN-GD", ("CN", "CN-GD"), None),
        ("XX", "", (None, None), "'XX' is not an ISO 3166-1 country code"),
        ("CN", "44", ("CN", None), "'CN-44' is not an ISO 3166-2 subdivision code"),
        ("CN", "CN-44", ("CN", None), "'CN-44' is not an ISO 3166-2 subdivision code"),
        ("GB", "US-CA", ("GB", None), "'US-CA' is not in country 'GB'"),
    ],
)
def test_a_residence_is_an_iso_code_in_force_or_a_warning(
    country: str, region: str, expected: tuple[str | None, str | None], warned: str | None
) -> None:
    """A code with the right shape but no place (XX, the withdrawn CN-44) would be counted
    as a residence in the reports; it is dropped, and the import says so for that row."""
    warnings: list[str] = []
    assert residence({"country": country, "region": region}, warnings) == expected
    if warned is None:
        assert warnings == []
    else:
        [warning] = warnings
        assert warned in warning
