"""Reports from the public: taken in without a key, acknowledged by email, limited per
address and in size, escaped everywhere, and attached to an incident for triage."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from breachflow.models.public_report import PublicReport
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port
from tests.flows.test_incident_flow import timeline_kinds
from tests.testkit.factories import people, seed_incident

REPORT = {
    "email": "finder@example.org",
    "what_happened": "My address <script>alert(1)</script> is in a paste on a public site.",
    "data_involved": "name, email, [red]phone[/red]",
}


@pytest.fixture
def site(live_smtp) -> Iterator[AppServer]:
    with AppServer(free_port()) as server:
        yield server


@SQLITE_ONLY
def test_a_report_is_acknowledged_kept_encrypted_listed_escaped_and_attached(
    db, settings, site, live_smtp, breach
):
    answer = httpx.post(f"{site.url}/api/v1/reports", json=REPORT)
    assert answer.status_code == 202, answer.text
    reference = answer.json()["reference"]
    assert answer.json()["acknowledged"] is True
    (ack,) = live_smtp.by_recipient()["finder@example.org"]
    assert reference in ack["Subject"] and reference in ack.get_content()
    with db.unit_of_work() as session:
        stored = session.scalar(select(PublicReport))
        assert b"finder@example.org" not in stored.email_enc  # encrypted at rest

    listed = breach("public", "list")
    assert reference in listed.stdout
    assert "<script>alert(1)</script>" in listed.stdout  # shown as text, not interpreted
    assert "[red]phone[/red]" in listed.stdout

    key = seed_incident(db, settings, people(2))
    attached = breach("public", "attach", reference, key)
    assert attached.returncode == 0, attached.stderr
    assert "public_report.attached" in timeline_kinds(db, key)
    timeline = breach("timeline", key, "--json").stdout
    assert reference in timeline and "finder@example.org" not in timeline
    assert "No report from the public waits" in breach("public", "list").stdout


def test_one_address_is_limited_and_bodies_are_small(site):
    bad = httpx.post(f"{site.url}/api/v1/reports", json={**REPORT, "email": "not-an-address"})
    assert bad.status_code == 422 and "not valid" in bad.json()["detail"]
    for _ in range(5):
        assert httpx.post(f"{site.url}/api/v1/reports", json=REPORT).status_code == 202
    limited = httpx.post(f"{site.url}/api/v1/reports", json=REPORT)
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    huge = httpx.post(f"{site.url}/api/v1/reports", json={**REPORT, "what_happened": "x" * 70_000})
    assert huge.status_code == 413


@SQLITE_ONLY
def test_the_public_page_takes_a_report_and_escapes_what_it_shows(site, live_smtp):
    page = httpx.get(f"{site.url}/report")
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    sent = httpx.post(
        f"{site.url}/report",
        data={"email": "finder@example.org", "what_happened": REPORT["what_happened"]},
    )
    assert sent.status_code == 200 and "PR-" in sent.text and "<script>" not in sent.text
    wrong = httpx.post(f"{site.url}/report", data={"email": "<b>x</b>", "what_happened": "seen it"})
    assert wrong.status_code == 422
    assert "<b>x" not in wrong.text and "not valid" in wrong.text
