"""``breach letters returns``: what the operator sees when importing a vendor's return file."""

from __future__ import annotations

import pytest

from breachflow.flows.incident import incident_response
from tests.conftest import SQLITE_ONLY
from tests.flows.notify.test_vendor_returns import (
    SECRETS,
    TODAY,
    incident_with_letters,
    letters,
    return_file,
    vendor,  # noqa: F401  (a fixture)
)


@SQLITE_ONLY
@pytest.mark.usefixtures("vendor")
def test_returns_are_imported_with_per_line_errors_and_never_a_traceback(
    breach, db, settings, tmp_path
):
    key = incident_with_letters(db, settings, tmp_path)
    incident_response(key, requested_by="test")
    shown = breach("show", key)
    assert shown.returncode == 0 and f"breach letters returns {key} FILE" in shown.stdout

    missing = breach("letters", "returns", key, str(tmp_path / "nowhere.csv"))
    assert missing.returncode == 1 and "no such return file" in missing.stderr
    headless = tmp_path / "headless.csv"
    headless.write_text("ref;when\nabc;2026-01-01\n", encoding="utf-8")
    wrong = breach("letters", "returns", key, str(headless))
    assert wrong.returncode == 1 and "missing: reference, status, date" in wrong.stderr

    rows = letters(db, key)
    lines = [(rows[s].idempotency_key, "mailed", str(TODAY), "") for s in "ABCD"]
    lines += [(rows["E"].idempotency_key, "posted", str(TODAY), "")]
    first = breach("letters", "returns", key, str(return_file(tmp_path / "r1.csv", lines)))
    assert first.returncode == 0, first.stderr
    assert "5 lines read (r1.csv): 4 mailed (now sent)" in first.stdout
    assert "6 " in first.stdout and "status must be mailed or undeliverable" in first.stdout
    assert "Still with the mailing vendor: 1 letter." in first.stdout

    bad = [(rows["E"].idempotency_key, "mailed", "someday", "")]
    none_used = breach("letters", "returns", key, str(return_file(tmp_path / "r2.csv", bad)))
    assert none_used.returncode == 1 and "date is not a date" in none_used.stdout

    last = [(rows["E"].idempotency_key, "undeliverable", str(TODAY), "Vacant")]
    done = breach("letters", "returns", key, str(return_file(tmp_path / "r3.csv", last)))
    assert done.returncode == 0 and "1 unreachable" in done.stdout
    assert f"`breach run {key}` goes on" in done.stdout
    for result in (shown, missing, wrong, first, none_used, done):
        assert "Traceback" not in result.stderr
        assert not [s for s in SECRETS if s in result.stdout + result.stderr]
