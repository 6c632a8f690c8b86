"""The public announcement: decided from the rules and the ledger, published to the site,
a signed webhook and the media list, with versions, and holding nobody's personal data."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from xml.etree import ElementTree

import pytest
from fontTools.ttLib import TTFont

from breachflow.flows.announce.decision import operator_decision
from breachflow.flows.announce.publication import publish
from breachflow.flows.incident import incident_response
from breachflow.models import commands, runtime
from breachflow.models.announcement import announcements, latest_decision
from breachflow.models.errors import ProviderUnavailable
from tests.conftest import SQLITE_ONLY, free_port
from tests.flows.test_incident_flow import timeline_kinds
from tests.testkit.factories import people, seed_incident

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def hipaa(settings, monkeypatch):
    """A HIPAA covered entity: its rule applies to health data, whoever is affected."""
    monkeypatch.setenv("BREACH_ORGANISATION_SECTORS", '["hipaa-covered"]')
    runtime.reset()
    return runtime.settings()


def _decision(db, key: str):
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        decision = latest_decision(session, incident.id)
        versions = announcements(session, incident.id)
        session.expunge_all()
    return decision, versions


def _site_text(settings) -> str:
    files = sorted(p for p in settings.site.rglob("*") if p.suffix in (".html", ".xml", ".json"))
    return "\n".join(path.read_text(encoding="utf-8") for path in files)


def test_three_percent_unreachable_triggers_the_hipaa_announcement_in_both_locales(db, hipaa):
    persons = people(400, broken_every=33)  # 12 people (3%) have no usable address
    key = seed_incident(db, hipaa, persons, data_categories=("email", "name", "health"))

    incident_response(key, requested_by="test")

    decision, versions = _decision(db, key)
    assert decision.required and decision.kind == "automatic"
    assert decision.grounds == ["us-hipaa: unreachable people >= 10: 12"]
    assert decision.min_days == 90
    assert [v.version for v in versions] == [1]
    assert versions[0].destinations["site"]["status"] == "published"
    assert (versions[0].ends_at - versions[0].published_at).days == 90

    site = hipaa.site
    english = (site / "announcements" / key / "en.html").read_text(encoding="utf-8")
    chinese = (site / "announcements" / key / "zh-CN.html").read_text(encoding="utf-8")
    assert (site / "announcements" / key / "en.v1.html").read_text("utf-8") == english
    assert 'lang="zh-CN"' in chinese and "事件基本情况" in chinese
    assert key in (site / "index.html").read_text(encoding="utf-8")
    # The CJK web font the pages load holds every character of the Chinese page.
    font = TTFont(site / "fonts" / "cjk-sc.woff2")
    used = {ord(c) for c in chinese if ord(c) > 0x2E80}  # the markup itself is ASCII
    assert len(used) > 100 and used <= set(font.getBestCmap())
    feed = ElementTree.parse(site / "feed.xml").getroot()  # noqa: S314 (our own file)
    atom = "{http://www.w3.org/2005/Atom}"
    entries = feed.findall(f"{atom}entry")
    # One entry per language, each in it, each with a tag URI (RFC 4151) of the site's host.
    lang = "{http://www.w3.org/XML/1998/namespace}lang"
    by_lang = {entry.get(lang): entry for entry in entries}
    assert set(by_lang) == {"en", "zh-CN"}
    assert by_lang["zh-CN"].find(f"{atom}link").get("href").endswith(f"{key}/zh-CN.html")
    assert "事件" in by_lang["zh-CN"].find(f"{atom}title").text
    tag = re.compile(r"^tag:[a-z0-9.-]+,\d{4}-\d{2}-\d{2}:[\w/.-]+$")
    ids = [feed.find(f"{atom}id").text] + [e.find(f"{atom}id").text for e in entries]
    assert all(tag.match(i) for i in ids) and len(set(ids)) == 3, ids
    # The page in one language links to the other beside it, wherever the site is served.
    assert '<a href="en.html" hreflang="en"' in chinese and "localhost" not in chinese

    published = _site_text(hipaa)
    for person in persons:  # no name or address of anyone affected, anywhere on the site
        assert person.email not in published and person.name not in published
    kinds = timeline_kinds(db, key)
    assert kinds.index("announcement.decided") < kinds.index("announcement.published")


def test_fewer_than_ten_unreachable_is_not_a_reason_for_a_public_announcement(db, hipaa):
    persons = people(60, broken_every=10)  # 6 unreachable: HIPAA's threshold is not met
    key = seed_incident(db, hipaa, persons, data_categories=("email", "name", "health"))

    incident_response(key, requested_by="test")

    decision, versions = _decision(db, key)
    assert not decision.required and versions == []
    considered = "\n".join(decision.inputs["considered"])
    assert "unreachable < 10: 6 (its substitute is not public)" in considered
    assert "unreachable people >= 10: 6" in considered
    assert not (hipaa.site / "announcements").exists()


class _Receiver(BaseHTTPRequestHandler):
    """A status page that keeps what it is sent."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_operator_decision_publishes_to_the_webhook_and_media_and_an_update_keeps_v1(
    db, settings, live_smtp, monkeypatch
):
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), _Receiver)
    _Receiver.received, _Receiver.status = [], 204
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("BREACH_ANNOUNCEMENT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    monkeypatch.setenv("BREACH_ANNOUNCEMENT_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("BREACH_MEDIA_EMAILS", '["newsdesk@paper.example"]')
    runtime.reset()
    key = seed_incident(db, runtime.settings(), people(8))
    try:
        operator_decision(key, "carol", "Individual notice judged difficult", waive=False)
        first = publish(key, "carol")
        second = publish(key, "carol", update_reason="Remedies extended to 24 months")
    finally:
        server.shutdown()

    assert (first.version, second.version) == (1, 2)
    assert set(second.destinations) == {"site", "webhook", "media"}
    assert all(d["status"] == "published" for d in second.destinations.values())
    assert len(_Receiver.received) == 2
    headers, body = _Receiver.received[1]
    signed = headers["Breachflow-Signature"].split(",")
    stamp, signature = (part.split("=", 1)[1] for part in signed)
    expected = hmac.new(b"s3cret", stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    payload = json.loads(body)
    assert (payload["incident"], payload["version"]) == (key, 2)
    assert headers["Idempotency-Key"] == f"{key}-v2"
    press = live_smtp.by_recipient()["newsdesk@paper.example"]
    assert len(press) == 2 and key in press[0].get_body(("plain",)).get_content()

    site = runtime.settings().site / "announcements" / key
    assert (site / "en.v1.html").exists() and (site / "en.v2.html").exists()
    current = (site / "en.html").read_text(encoding="utf-8")
    assert f"{key}/en.v1.html" in current  # the current page links the version it replaced
    decision, _ = _decision(db, key)
    assert (decision.kind, decision.decided_by) == ("forced", "carol")


@SQLITE_ONLY
def test_a_waived_announcement_is_not_overridden_by_the_flow(db, hipaa, breach):
    persons = people(400, broken_every=33)
    key = seed_incident(db, hipaa, persons, data_categories=("email", "name", "health"))
    waived = breach("announce", key, "--waive", "--reason", "Everyone reached by phone instead")
    assert waived.returncode == 0, waived.stderr

    incident_response(key, requested_by="test")

    decision, versions = _decision(db, key)
    assert (decision.kind, decision.required, versions) == ("waived", False, [])
    shown = breach("show", key)
    assert "waived" in shown.stdout and "Everyone reached by phone instead" in shown.stdout
    refused = breach("announce", key, "--reason", " ")
    assert refused.returncode == 1 and "reason" in refused.stderr


def test_a_webhook_outage_stops_the_run_after_the_site_and_a_rerun_publishes_the_rest(
    db, settings, monkeypatch
):
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), _Receiver)
    _Receiver.received, _Receiver.status = [], 503
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("BREACH_NOTIFIER_MODE", "live")
    monkeypatch.setenv("BREACH_SMTP_URL", "smtp://127.0.0.1:9")  # nobody to notify by email
    monkeypatch.setenv("BREACH_ANNOUNCEMENT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    monkeypatch.setenv("BREACH_ANNOUNCEMENT_WEBHOOK_SECRET", "s3cret")
    runtime.reset()
    persons = people(6, broken_every=1)  # nobody has a usable address
    key = seed_incident(db, runtime.settings(), persons)
    operator_decision(key, "carol", "Nobody can be told one by one", waive=False)
    try:
        with pytest.raises(ProviderUnavailable, match="webhook: webhook answered HTTP 503"):
            incident_response(key, requested_by="test")
        _, versions = _decision(db, key)
        assert versions[0].destinations["site"]["status"] == "published"
        assert versions[0].destinations["webhook"]["status"] == "failed"

        _Receiver.status = 204
        summary = incident_response(key, requested_by="test")
    finally:
        server.shutdown()
    assert summary.state == "reporting"  # the announcement stays up for its period
    assert any(o.startswith("the public announcement") for o in summary.open_before_closing)
    _, versions = _decision(db, key)
    assert [v.version for v in versions] == [1]
    assert versions[0].published_everywhere()
    assert len(_Receiver.received) == 2  # the refused attempt and the one that took
    assert timeline_kinds(db, key).count("announcement.publish_failed") == 1
