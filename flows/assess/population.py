"""Turn one raw record into a clean, encrypted person, or the reason it cannot be one.

Pure functions of the record and the vault, so that chunks of records can be validated in
worker processes while the main process writes to the database. Reasons and warnings never
quote a contact detail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from breachflow.flows.assess.readers import Record
from breachflow.models.crypto import Vault
from breachflow.notifiers.push.common import validate_push_contact
from breachflow.rules import places
from breachflow.rules.vocab import data_categories

MAX_FIELD = 1000  # longer cells are hostile or broken exports; no real name is this long
MAX_SUBJECT_ID = 200  # the stored width; a longer id could not be matched on re-import
MAX_NAME = 300
NO_CONTACT = "no contact given (email, phone, push or address)"
MULTILINE = frozenset({"address"})  # a postal address may span lines in a quoted CSV cell
ADDRESS_LINES = re.compile(r"\r?\n|\|")
MAX_ADDRESS_LINES = 6
# RFC 5322 dot-atom in ASCII: the local parts email-validator passes through unchanged.
PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
MAX_EMAIL, MAX_LOCAL = 254, 64
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
LOCALE = re.compile(r"^([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}|\d{3}))?$", re.IGNORECASE)
COUNTRY = re.compile(r"^[A-Z]{2}$")
REGION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
CATEGORY_SPLIT = re.compile(r"[;,|]")
KNOWN_CATEGORIES = frozenset(data_categories())


@dataclass(slots=True)
class Person:
    """A validated row, contact details already encrypted and blind-indexed."""

    line: int
    external_id: str
    name_enc: bytes | None
    email_enc: bytes | None
    email_index: str | None
    email_problem: str | None
    phone_enc: bytes | None
    phone_index: str | None
    phone_problem: str | None
    push_enc: bytes | None
    push_problem: str | None
    address_enc: bytes | None
    address_problem: str | None
    locale: str
    country: str | None
    region: str | None
    residence_inferred: bool
    data_categories: list[str] | None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    reason: str


def normalize_locale(raw: str, default: str) -> tuple[str, str | None]:
    """BCP 47 casing (``zh_cn`` → ``zh-CN``); an unusable tag falls back to ``default``."""
    value = raw.strip().replace("_", "-")
    if not value:
        return default, None
    match = LOCALE.match(value)
    if not match:
        return default, f"locale {value[:20]!r} is not a language tag; using {default}"
    language, script, region = match.groups()
    parts = [
        language.lower(),
        script.title() if script else None,
        region.upper() if region else None,
    ]
    return "-".join(p for p in parts if p), None


@lru_cache(maxsize=65536)
def _domain(domain: str) -> str | None:
    """email-validator's normalized form of ``domain``, or None if it rejects it.

    An export has millions of addresses but few domains: asking once per domain keeps the
    library's verdict and spends its cost once.
    """
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalize_email(raw: str) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    local, at, domain = raw.rpartition("@")
    if at and len(raw) <= MAX_EMAIL and len(local) <= MAX_LOCAL and PLAIN_LOCAL.fullmatch(local):
        normalized_domain = _domain(domain)
        if normalized_domain:  # a plain local part on a domain the library accepted
            return f"{local}@{normalized_domain}", None
    try:
        # No SMTPUTF8: Python's email package cannot write a non-ASCII local part.
        checked = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return None, f"invalid email address: {exc}"
    return checked.normalized, None


def normalize_phone(raw: str, country: str | None) -> tuple[str | None, str | None, str | None]:
    """E.164 and the number's own region, or the problem."""
    if not raw:
        return None, None, None
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        return None, None, "invalid phone number: cannot be parsed"
    # The stated country first: finding the region otherwise means trying each region that
    # shares the calling code (some 25 for +1), which costs most of a row's validation.
    if country and phonenumbers.is_valid_number_for_region(number, country):
        region: str | None = country
    else:
        region = phonenumbers.region_code_for_number(number)  # None when no region has it
    if region is None or not phonenumbers.is_valid_number_for_region(number, region):
        return None, None, "invalid phone number: not a valid number for its region"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, region, None


def normalize_address(raw: str) -> tuple[str | None, str | None]:
    """Lines of a postal address (one per line, or separated by ``|``), or the problem."""
    lines = [" ".join(line.split()) for line in ADDRESS_LINES.split(raw)]
    lines = [line for line in lines if line]
    if not lines:
        return None, None
    if len(lines) < 2:
        return None, "postal address has a single line: a letter needs street and town"
    if len(lines) > MAX_ADDRESS_LINES:
        return None, f"postal address has more than {MAX_ADDRESS_LINES} lines"
    return "\n".join(lines), None


def normalize_push(raw: str) -> tuple[str | None, str | None]:
    if not raw:
        return None, None
    try:
        return validate_push_contact(raw), None
    except ValueError as exc:
        return None, f"invalid push token: {exc}"


def shape_problem(values: dict[str, str]) -> str | None:
    for column, value in values.items():
        if len(value) > MAX_FIELD:
            return f"field {column!r} is longer than {MAX_FIELD} characters"
        if CONTROL.search(value) or (column not in MULTILINE and ("\n" in value or "\r" in value)):
            return f"field {column!r} contains a line break or control character"
    return None


def residence(values: dict[str, str], warnings: list[str]) -> tuple[str | None, str | None]:
    """The person's country and subdivision as ISO 3166 codes in force, or None with a
    warning: a code that is not one (``XX``, ``CN-44``) would be counted as a residence
    and could bring in, or leave out, a regime. A bare subdivision (``CA``) is read in
    the person's country; a subdivision of another country than the one given is refused."""
    country = values.get("country", "").strip().upper() or None
    if country and not (COUNTRY.match(country) and places.is_country(country)):
        warnings.append(f"country {country[:10]!r} is not an ISO 3166-1 country code")
        country = None
    region = values.get("region", "").strip().upper() or None
    if region and country and "-" not in region:
        region = f"{country}-{region}"
    if region and not (REGION.match(region) and places.is_subdivision(region)):
        warnings.append(f"region {region[:10]!r} is not an ISO 3166-2 subdivision code")
        region = None
    if region and country and not region.startswith(f"{country}-"):
        warnings.append(f"region {region!r} is not in country {country!r}; region ignored")
        region = None
    if region and not country:
        country = region.split("-")[0]
    return country, region


def validate(
    record: Record, incident_id: int, vault: Vault, default_locale: str
) -> Person | Rejection:
    if record.values is None:
        return Rejection(record.line, record.problem or "unreadable record")
    values = record.values
    problem = shape_problem(values)
    if problem:
        return Rejection(record.line, problem)
    external_id = values.get("subject_id", "").strip()
    if not external_id:
        return Rejection(record.line, "subject_id is empty")
    if len(external_id) > MAX_SUBJECT_ID:
        return Rejection(record.line, f"subject_id is over {MAX_SUBJECT_ID} characters")

    warnings: list[str] = []
    country, region = residence(values, warnings)

    email, email_problem = normalize_email(values.get("email", "").strip())
    phone, phone_region, phone_problem = normalize_phone(values.get("phone", "").strip(), country)
    push, push_problem = normalize_push(values.get("push", "").strip())
    address, address_problem = normalize_address(values.get("address", ""))
    residence_inferred = False
    if not country and phone_region and phone_region != "ZZ":
        country, residence_inferred = phone_region, True
    contacts = (email, phone, push, address)
    if not any((*contacts, email_problem, phone_problem, push_problem, address_problem)):
        email_problem = NO_CONTACT
    locale, locale_problem = normalize_locale(values.get("locale", ""), default_locale)
    name = values.get("name", "").strip() or None
    if name and len(name) > MAX_NAME:
        warnings.append(f"name cut to its first {MAX_NAME} characters")
        name = name[:MAX_NAME]
    problems = (email_problem, phone_problem, push_problem, address_problem, locale_problem)
    warnings.extend(p for p in problems if p)
    listed = {c.strip().lower() for c in CATEGORY_SPLIT.split(values.get("data_categories", ""))}
    categories = sorted(listed & KNOWN_CATEGORIES)
    warnings.extend(
        f"data category {unknown[:30]!r} is not one the rules know; ignored"
        for unknown in sorted(listed - KNOWN_CATEGORIES - {""})
    )
    return Person(
        line=record.line,
        external_id=external_id,
        name_enc=vault.encrypt("name", name),
        email_enc=vault.encrypt("email", email),
        # Mailboxes are case-insensitive in practice: Erin@… and erin@… are one person.
        email_index=vault.blind_index(incident_id, "email", email.casefold() if email else None),
        email_problem=email_problem,
        phone_enc=vault.encrypt("phone", phone),
        phone_index=vault.blind_index(incident_id, "phone", phone),
        phone_problem=phone_problem,
        push_enc=vault.encrypt("push", push),
        push_problem=push_problem,
        address_enc=vault.encrypt("address", address),
        address_problem=address_problem,
        locale=locale,
        country=country,
        region=region,
        residence_inferred=residence_inferred,
        data_categories=categories or None,
        warnings=warnings,
    )


_worker_vault: Vault | None = None


def start_worker(master_key: bytes) -> None:
    """Process-pool initializer: each worker builds its own vault once."""
    global _worker_vault
    _worker_vault = Vault(master_key)


def validate_chunk(
    records: list[Record], incident_id: int, default_locale: str
) -> list[Person | Rejection]:
    assert _worker_vault is not None, "start_worker was not called in this process"
    return [validate(r, incident_id, _worker_vault, default_locale) for r in records]
