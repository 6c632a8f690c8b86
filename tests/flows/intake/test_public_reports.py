"""Reports from the public: taken in without a key, acknowledged by email, limited per
address and in size, escaped everywhere, and attached to an incident for triage."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from breachflow.api.clients import resolve
from breachflow.models import runtime
from breachflow.models.public_report import PublicReport
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port
from tests.flows.test_incident_flow import timeline_kinds
from tests.testkit.factories import people, seed_incident
from tests.testkit.serve import breach_serve

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


def report_from(url: str, **headers: str) -> int:
    return httpx.post(f"{url}/api/v1/reports", json=REPORT, headers=headers).status_code


@SQLITE_ONLY
def test_breach_serve_believes_forwarded_headers_only_from_its_trusted_proxies(settings, live_smtp):
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default, so anyone on the machine
    (or a proxy passing the header through) could reset the per-address limit at will."""
    with breach_serve() as served:
        forged = [{"X-Forwarded-For": f"198.51.100.{n}"} for n in range(6)]
        answers = [report_from(served.url, **headers) for headers in forged]
    assert answers == [202] * 5 + [429]


@SQLITE_ONLY
def test_behind_a_trusted_proxy_each_client_has_its_own_limit_and_all_share_one(
    monkeypatch, live_smtp
):
    monkeypatch.setenv("BREACH_TRUSTED_PROXIES", '["127.0.0.0/8"]')
    monkeypatch.setenv("BREACH_PUBLIC_REPORTS_PER_HOUR", "8")
    runtime.reset()
    with AppServer(free_port()) as site:
        alice = {"X-Forwarded-For": "203.0.113.7"}
        assert [report_from(site.url, **alice) for _ in range(6)] == [202] * 5 + [429]
        # What the client wrote to the left of what the proxy appended changes nothing.
        spoofed = {"X-Forwarded-For": "192.0.2.1, 203.0.113.7"}
        assert report_from(site.url, **spoofed) == 429
        # RFC 7239 too, and an IPv6 client is limited by its /64.
        assert report_from(site.url, Forwarded='for="[2001:db8::1]:4711";proto=https') == 202
        assert report_from(site.url, Forwarded='for="[2001:db8::2]"') == 202
        # Every address together: 8 an hour (5 + 2 taken so far, then the 8th, then none).
        assert report_from(site.url, **{"X-Forwarded-For": "198.51.100.1"}) == 202
        assert report_from(site.url, **{"X-Forwarded-For": "198.51.100.2"}) == 429


def test_the_client_is_the_nearest_hop_that_is_not_a_trusted_proxy():
    proxies = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]
    xff = "x-forwarded-for"
    assert resolve("192.0.2.9", {xff: ["203.0.113.7"]}, proxies) == "192.0.2.9"  # untrusted
    assert resolve("10.0.0.2", {xff: ["203.0.113.7, 10.0.0.5"]}, proxies) == "203.0.113.7"
    assert resolve("10.0.0.2", {xff: ["1.1.1.1", "203.0.113.7"]}, proxies) == "203.0.113.7"
    assert resolve("10.0.0.2", {xff: ["203.0.113.7:8080"]}, proxies) == "203.0.113.7"
    forwarded = {"forwarded": ['for=192.0.2.60;proto=http;by=10.0.0.2, for="[fd00::3]:80"']}
    assert resolve("fd00::1", forwarded | {xff: ["198.51.100.1"]}, proxies) == "192.0.2.60"
    assert resolve("10.0.0.2", {"forwarded": ["for=unknown"]}, proxies) == "unknown"
    assert resolve("10.0.0.2", {xff: ["<script>"]}, proxies) == "<script>"  # one shared limit
    assert resolve("10.0.0.2", {}, proxies) == "10.0.0.2"  # the proxy itself
