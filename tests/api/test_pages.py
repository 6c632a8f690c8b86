"""The compliance pages (``/ui``) under uvicorn: in headless Chromium (Debian's
``/usr/bin/chromium`` driven by Playwright), and with plain HTTP for the doors.

The browser logs in through the form, reads the board's countdown, the incident's
obligations and funnel, the timeline and its verified chain, sees a tampered event
reported as the break, and shows a ``<script>`` title as text. Each page's screenshot is
written under the test's temporary directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select

from breachflow.flows.announce.decision import operator_decision
from breachflow.flows.announce.publication import publish
from breachflow.flows.approve.runbook import mark_done
from breachflow.flows.assess.assessment import assess
from breachflow.flows.export.verify import verify_bundle
from breachflow.flows.report.filing import due, file_reports
from breachflow.flows.report.submission import give_delay_reason, record_submission
from breachflow.models import commands, ledger, runtime
from breachflow.models.apikey import Role, create_key, revoke_key
from breachflow.models.base import utcnow
from breachflow.models.chain import chain_for
from breachflow.models.delivery import Channel, DeliveryResult, DeliveryStatus
from breachflow.models.incident import IncidentState
from breachflow.models.notice import parse_notice_texts
from breachflow.models.notification import Notification, NotificationState
from breachflow.models.regulator_report import reports
from breachflow.models.subject import Subject
from breachflow.models.timeline import TimelineEvent
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port
from tests.models.test_timeline import tamper
from tests.testkit.factories import EXAMPLE_NOTICE, declare_test_incident

CHROMIUM = "/usr/bin/chromium"
SCRIPT_TITLE = '<script>alert("pwned")</script> 客服数据泄露'
PEOPLE = (
    "subject_id,name,email,phone,locale,country\n"
    "S1,Ada Lovelace,ada@example.com,,en,GB\n"
    "S2,张伟,zhang.wei@example.cn,,zh-CN,CN\n"
    "S3,Cy,cy.at.example.com,+447400123401,en,GB\n"  # no usable email: starts on SMS
    "S4,Di,di@example.com,+447400123402,en,GB\n"  # email bounces: falls back to SMS
    "S5,Eve,eve.at.example.com,,en,GB\n"  # nothing usable: unreachable
)
POLICY = re.compile(r"default-src 'none'.*frame-ancestors 'none'")


def seed(
    title: str, *, aware_days_ago: float = 1, stage: str = "full", late_reason: str = ""
) -> str:
    """An incident as a response leaves it part way: assessed, reports filed (one
    submitted), notices sent, bounced, fallen back and unreachable, an announcement."""
    config, db = runtime.settings(), runtime.database()
    path = config.home.parent / f"people-{utcnow().timestamp()}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PEOPLE, encoding="utf-8")
    keys = runtime.vault()
    from breachflow.flows.assess.subjects import import_subjects

    with db.unit_of_work() as session:
        incident = declare_test_incident(
            session, title, utcnow(), ("email", "name", "phone"), aware_days_ago
        )
        texts = parse_notice_texts(yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8")))
        commands.set_notice(session, incident, texts, "cli:alice")
        import_subjects(
            session, incident, path, actor="cli:alice", vault=keys, default_locale="en",
            rejects_dir=config.home / "rejects",
        )  # fmt: skip
        if stage == "imported":
            return incident.key
        assess(session, incident, "cli:alice", config)
        if stage == "assessed":
            return incident.key
        file_reports(session, incident, due(session, incident), "cli:alice")
        mark_done(session, incident, "triage-decide", "cli:bob", note="confirmed")
        _send(session, incident)
        key = incident.key
    if late_reason:  # past the 72 hours: held until someone gives the reasons
        give_delay_reason(key, "uk-gdpr", "initial", late_reason, "cli:bob")
    record_submission(key, "uk-gdpr", "initial", reference="ICO-123", at=utcnow(), actor="cli:bob")
    operator_decision(key, "cli:carol", "Individual notice is difficult for some", waive=False)
    publish(key, "cli:carol")
    return key


def _send(session, incident) -> None:  # type: ignore[no-untyped-def]
    """What a dispatcher would record: S1, S2 sent by email (S1 later delivered), S4's
    email bounces and they fall back to SMS, where S3 and S4 are sent."""
    chain = chain_for(session, incident)
    ledger.queue(session, incident, chain, 1)
    policy = ledger.RetryPolicy(3, 1, 1)
    for channel in (Channel.EMAIL, Channel.SMS):
        rows = ledger.claim(session, incident, channel, "w1", 100, 60)
        results = [
            DeliveryResult(
                notification_id=row.id,
                status=DeliveryStatus.FAILED_PERMANENT
                if channel is Channel.EMAIL and row.subject.external_id == "S4"
                else DeliveryStatus.SENT,
                detail="550 5.1.1 user unknown",
            )
            for row in rows
        ]
        ledger.record_results(session, "w1", results, policy, chain)
    first = session.scalar(  # S1's email, named: the queue's row order is the database's
        select(Notification)
        .join(Subject, Subject.id == Notification.subject_id)
        .where(
            Notification.incident_id == incident.id,
            Notification.channel == Channel.EMAIL,
            Subject.external_id == "S1",
        )
    )
    first.state, first.delivered_at = NotificationState.DELIVERED, utcnow()


@pytest.fixture
def app(settings) -> Iterator[tuple[AppServer, dict[str, str]]]:
    """The app on a free port and one key per role (and a revoked one)."""
    tokens: dict[str, str] = {}
    with runtime.database().unit_of_work() as session:
        for role in Role:
            tokens[role] = create_key(session, f"{role}-key", role, "test")
        tokens["revoked"] = create_key(session, "old-admin", Role.ADMIN, "test")
    with AppServer(free_port()) as server:
        yield server, tokens


def _session(server: AppServer, token: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    answer = client.post("/ui/login", data={"key": token, "next": "/ui/"})
    assert answer.status_code == 303, answer.text
    return client


def _csrf(client: httpx.Client, key: str) -> str:
    """The form token the incident page gives this session."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get(f"/ui/incidents/{key}").text)
    assert found, "the incident page carries no form token"
    return found.group(1)


def _open_record(client: httpx.Client, key: str, subject_id: str) -> httpx.Response:
    token = _csrf(client, key)
    return client.post(
        f"/ui/incidents/{key}/people", data={"subject_id": subject_id, "csrf": token}
    )


def _events(key: str) -> list[TimelineEvent]:
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        rows = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident.id)
            .order_by(TimelineEvent.seq)
        ).all()
        session.expunge_all()
        return list(rows)


# --- in the browser -------------------------------------------------------------------


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.dialogs = dialogs  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            browser.close()


def _shot(page: Page, path: Path) -> None:
    """A screenshot once the page's web font has arrived (Chinese would show as boxes)."""
    page.wait_for_load_state("networkidle")
    page.evaluate("document.fonts.ready.then(() => true)")
    page.screenshot(path=path, full_page=True)


def _log_in(page: Page, server: AppServer, token: str) -> None:
    page.goto(f"{server.url}/ui/")
    assert page.url.startswith(f"{server.url}/ui/login")  # no session: the login page
    page.fill("input[name=key]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui/")


@pytest.fixture
def incidents(app) -> tuple[str, str]:
    """Seeded before the browser starts: Playwright's sync API holds an event loop, and
    publishing the announcement runs one of its own."""
    return seed("Support credential misuse"), seed(SCRIPT_TITLE, aware_days_ago=4, stage="assessed")


def test_the_pages_in_chromium_board_incident_timeline_and_a_tampered_chain(
    app, incidents: tuple[str, str], browser_page: Page, tmp_path: Path
) -> None:
    server, tokens = app
    key, hostile = incidents
    page = browser_page
    _log_in(page, server, tokens[Role.COMPLIANCE])

    # The board: every incident, its nearest deadline as a countdown, colour-coded.
    row = page.locator(f"tr[data-incident='{key}']")
    deadline = row.locator("td.deadline").inner_text()
    assert re.search(r"in \d+ d \d+ h", deadline), deadline  # uk-gdpr 72 h: ~2 days left
    assert "uk-gdpr" not in deadline  # submitted: the nearest open one is the policy's
    assert row.locator(".countdown.pending").count() == 1
    assert row.locator("td.num").inner_text() == "5"
    assert "overdue" in page.locator(f"tr[data-incident='{hostile}'] td.deadline").inner_text()
    _shot(page, tmp_path / "board.png")

    # The incident: obligations with their status, the funnel, reports, runbook.
    row.locator("a").first.click()
    page.wait_for_url(f"**/ui/incidents/{key}")
    obligations = page.locator("#obligations").inner_text()
    assert "uk-gdpr" in obligations and "met" in obligations and "pending" in obligations
    email = page.locator("figure.funnel[data-channel=email]")
    assert email.locator("svg rect").count() == 12  # six stages, each a track and a bar
    counts = page.locator("#funnel-numbers tbody tr").all_inner_texts()
    assert any(re.fullmatch(r"Email\t3\t2\t1\t1\t1\t0\t0", c) for c in counts), counts
    assert any(re.fullmatch(r"No channel\t1\t0\t0\t1\t0\t1\t0", c) for c in counts), counts
    assert "ICO-123" in page.locator("#reports").inner_text()
    # triage-decide by a person; the import, the assessment and the notice by the system
    assert "4 of 32 steps done" in page.locator("#runbook h2").inner_text()
    assert "published" in page.locator("#announcement").inner_text()
    assert "ada@example.com" not in page.content()  # no contact details on this page
    exports = page.locator("#export")
    for download in ("PDF report", "Timeline CSV", "JSON", "Verifiable bundle"):
        assert exports.get_by_role("button", name=download, exact=True).is_visible(), download
    with page.expect_download() as downloaded:  # a form post with the page's token
        exports.get_by_role("button", name="JSON", exact=True).click()
    assert downloaded.value.suggested_filename.endswith(".json")
    assert "breach audit verify --bundle FILE" in page.locator("#export").inner_text()
    _shot(page, tmp_path / "incident.png")

    # The timeline: every event in order, the chain verified, filters.
    page.click("text=Timeline")
    page.wait_for_url(f"**/ui/incidents/{key}/timeline")
    stored = _events(key)
    seqs = page.locator("#events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.seq)")
    assert seqs == [str(e.seq) for e in stored]
    assert "Chain verified" in page.locator("#chain").inner_text()
    _shot(page, tmp_path / "timeline.png")
    page.select_option("select[name=kind]", "report.submitted")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**kind=report.submitted**")
    assert page.locator("#events tbody tr").count() == 1
    assert "cli:bob" in page.locator("#events tbody tr").inner_text()

    # Someone with database rights edits event 3: the page names the break.
    tamper(
        runtime.database(),
        "UPDATE timeline_events SET payload = :p WHERE seq = 3 AND incident_id = :i",
        p='{"note": "nothing to see"}',
        i=stored[0].incident_id,
    )
    page.goto(f"{server.url}/ui/incidents/{key}/timeline")
    assert "broken at event 3" in page.locator("#chain").inner_text()
    _shot(page, tmp_path / "timeline-broken.png")

    # A title that is a script renders as text; Chinese renders with the shipped font.
    page.goto(f"{server.url}/ui/incidents/{hostile}")
    assert SCRIPT_TITLE in page.locator("h1").inner_text()
    assert page.locator("script").count() == 0 and page.dialogs == []  # type: ignore[attr-defined]
    _shot(page, tmp_path / "script-title.png")
    assert page.evaluate(
        "[...document.fonts].some(f => f.family.includes('Breachflow CJK')"
        " && f.status === 'loaded')"
    )
    page.goto(f"{server.url}/ui/")
    assert SCRIPT_TITLE in page.locator(f"tr[data-incident='{hostile}']").inner_text()
    assert page.dialogs == []  # type: ignore[attr-defined]
    for name in ("board", "incident", "timeline", "timeline-broken", "script-title"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


@SQLITE_ONLY
def test_a_person_record_is_for_allowed_roles_and_every_look_is_on_the_timeline(
    app, browser_page: Page, tmp_path: Path
) -> None:
    server, tokens = app
    key = seed("Support credential misuse", stage="imported")
    before = len(_events(key))

    oncall = _session(server, tokens[Role.ONCALL])
    refused = _open_record(oncall, key, "S2")
    assert refused.status_code == 403 and "oncall key may not" in refused.text
    assert "zhang.wei" not in refused.text and len(_events(key)) == before
    assert "Open record" not in oncall.get(f"/ui/incidents/{key}").text

    page = browser_page
    _log_in(page, server, tokens[Role.RESPONDER])
    page.goto(f"{server.url}/ui/incidents/{key}")
    page.fill("input[name=subject_id]", "S2")
    page.click("text=Open record")
    page.wait_for_url(f"**/ui/incidents/{key}/people")
    contacts = page.locator("#contacts").inner_text()
    assert "zhang.wei@example.cn" in contacts and "张伟" in contacts
    _shot(page, tmp_path / "person.png")

    viewed = _events(key)[-1]
    assert (viewed.kind, viewed.actor) == ("contacts.viewed", "api-key:responder-key")
    assert viewed.payload == {"subject_id": "S2", "role": "responder"}
    assert f"event {viewed.seq}" in page.locator(".notice").inner_text()
    admin = _session(server, tokens[Role.ADMIN])
    missing = _open_record(admin, key, "S99")
    assert missing.status_code == 404 and len(_events(key)) == viewed.seq

    # A GET changes nothing: a link only offers the button; a form without this session's
    # token, or posted from another site, is refused and records nothing.
    link = admin.get(f"/ui/incidents/{key}/people/S2")
    assert link.status_code == 200 and "Open the record" in link.text
    assert "zhang.wei" not in link.text
    forged = admin.post(f"/ui/incidents/{key}/people", data={"subject_id": "S2", "csrf": "0" * 64})
    assert forged.status_code == 403 and "zhang.wei" not in forged.text
    cross_site = admin.post(
        f"/ui/incidents/{key}/people",
        data={"subject_id": "S2", "csrf": _csrf(admin, key)},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403
    other_session = _csrf(_session(server, tokens[Role.ADMIN]), key)
    replayed = admin.post(
        f"/ui/incidents/{key}/people", data={"subject_id": "S2", "csrf": other_session}
    )
    assert replayed.status_code == 403 and len(_events(key)) == viewed.seq


# --- over plain HTTP ------------------------------------------------------------------


@SQLITE_ONLY
def test_the_board_shows_open_incidents_a_page_at_a_time_and_the_closed_ones_apart(
    app, monkeypatch
):
    server, tokens = app
    monkeypatch.setattr("breachflow.api.pages.board.BOARD_PAGE", 2)
    with runtime.database().unit_of_work() as session:
        keys = [
            declare_test_incident(session, f"Incident {n}", utcnow(), ("email",), 1).key
            for n in range(4)
        ]
        done = commands.get_incident(session, keys[0])
        done.state = IncidentState.DISMISSED
    viewer = _session(server, tokens[Role.COMPLIANCE])

    def listed(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        shown = [k for k in keys if f'data-incident="{k}"' in answer.text]
        return sorted(shown, key=lambda k: answer.text.index(f'data-incident="{k}"'))

    first = viewer.get("/ui/")
    assert listed(first) == keys[3:1:-1] and "3 incidents; showing 1–2" in first.text
    assert 'href="?offset=2"' in first.text
    assert listed(viewer.get("/ui/", params={"offset": 2})) == [keys[1]]
    assert listed(viewer.get("/ui/", params={"show": "closed"})) == [keys[0]]
    assert len(listed(viewer.get("/ui/", params={"show": "all", "offset": 2}))) == 2
    for bad in ({"show": "everything"}, {"offset": "-1"}):
        refused = viewer.get("/ui/", params=bad)
        assert refused.status_code == 422 and "text/html" in refused.headers["content-type"]


@SQLITE_ONLY
def test_without_a_session_every_page_sends_you_to_log_in_and_bad_keys_are_refused(app):
    server, tokens = app
    key = seed("Support credential misuse", stage="imported")
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    for path in ("/ui/", f"/ui/incidents/{key}", f"/ui/incidents/{key}/timeline?kind=x",
                 f"/ui/incidents/{key}/people/S1"):  # fmt: skip
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next=%2Fui%2F"), path
        assert answer.headers["x-frame-options"] == "DENY"

    login = anonymous.get("/ui/login")
    assert POLICY.search(login.headers["content-security-policy"])
    assert login.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in login.text
    for token, status, says in (
        ("bf_0000_guess", 401, "unknown or revoked"),
        ("", 401, "unknown or revoked"),
        (tokens[Role.ALERT_SOURCE], 403, "alert-source key cannot"),
    ):
        answer = anonymous.post("/ui/login", data={"key": token})
        assert answer.status_code == status and says in answer.text
        assert "set-cookie" not in answer.headers
    foreign = anonymous.post(
        "/ui/login", data={"key": tokens[Role.ADMIN]}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    framed = anonymous.post(
        "/ui/login", data={"key": tokens[Role.ADMIN]}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert framed.status_code == 403 and "set-cookie" not in framed.headers

    answer = anonymous.post(
        "/ui/login", data={"key": tokens[Role.ADMIN], "next": "https://evil.example/"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/ui"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # the public URL is http here
    # bf_<prefix>_<secret>; the secret is URL-safe base64 and may hold "_" itself.
    secret = tokens[Role.ADMIN].split("_", 2)[2]
    assert secret not in cookie and tokens[Role.ADMIN] not in cookie

    value = anonymous.cookies["breach_session"]
    forged = httpx.Client(base_url=server.url, cookies={"breach_session": value[:-4] + "0000"})
    assert forged.get("/ui/").status_code == 303
    assert anonymous.get("/ui/").status_code == 200
    assert anonymous.post("/ui/logout").status_code == 303
    assert anonymous.get("/ui/").status_code == 303  # the cookie is gone


@SQLITE_ONLY
def test_the_servers_address_leads_to_the_pages(app):
    """``/`` was a 404: a person typing the address is sent to the pages, then to log in."""
    server, _ = app
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        answer = anonymous.get("/", follow_redirects=False)
        assert answer.status_code == 307 and answer.headers["location"] == "/ui/"
        landed = anonymous.get("/", follow_redirects=True)
    assert landed.status_code == 200 and "/ui/login" in str(landed.url)


def test_revoking_a_key_ends_its_sessions_and_https_makes_the_cookie_secure(app, monkeypatch):
    server, tokens = app
    client = _session(server, tokens["revoked"])
    assert client.get("/ui/").status_code == 200
    with runtime.database().unit_of_work() as session:
        revoke_key(session, "old-admin", "test")
    assert client.get("/ui/").status_code == 303

    monkeypatch.setenv("BREACH_PUBLIC_URL", "https://breach.example")
    runtime.settings.cache_clear()
    answer = httpx.post(f"{server.url}/ui/login", data={"key": tokens[Role.ONCALL]})
    assert "secure" in answer.headers["set-cookie"].lower()


@SQLITE_ONLY
def test_a_compliance_key_sees_every_page_and_no_contact_detail_outside_a_record(app):
    server, tokens = app
    key = seed("Support credential misuse")
    compliance = _session(server, tokens[Role.COMPLIANCE])
    pages = {
        "/ui/": "Support credential misuse",
        f"/ui/incidents/{key}": "Obligations",
        f"/ui/incidents/{key}/timeline": "Chain verified",
        f"/ui/incidents/{key}/timeline?actor=cli%3Abob": "report.submitted",
    }
    for path, shows in pages.items():
        answer = compliance.get(path)
        assert answer.status_code == 200 and shows in answer.text, path
        assert POLICY.search(answer.headers["content-security-policy"])
        for detail in ("ada@example.com", "+447400123401", "Ada Lovelace", "张伟"):
            assert detail not in answer.text, (path, detail)
    record = _open_record(compliance, key, "S1")
    assert record.status_code == 200 and "ada@example.com" in record.text
    assert record.headers["cache-control"] == "no-store"
    assert compliance.get("/ui/incidents/INC-1999-0001").status_code == 404

    late = seed("Late report", aware_days_ago=4, late_reason="Forensics took <longer>.")
    obligations = compliance.get(f"/ui/incidents/{late}").text
    assert "met late" in obligations and "Forensics took &lt;longer&gt;." in obligations
    assert _events(key)[-1].actor == "api-key:compliance-key"


@SQLITE_ONLY
def test_a_compliance_session_downloads_each_export_and_it_is_on_the_timeline(
    app, tmp_path: Path
) -> None:
    server, tokens = app
    key = seed("Support credential misuse")
    compliance = _session(server, tokens[Role.COMPLIANCE])
    downloads = {
        "pdf": ("application/pdf", b"%PDF-"),
        "csv": ("text/csv; charset=utf-8", "\ufeffincident,title,seq".encode()),
        "json": ("application/json", b"{"),
        "bundle": ("application/zip", b"PK"),
    }
    token = _csrf(compliance, key)
    for fmt, (media_type, starts) in downloads.items():
        answer = compliance.post(f"/ui/incidents/{key}/export/{fmt}", data={"csrf": token})
        assert answer.status_code == 200, (fmt, answer.text[:300])
        assert answer.headers["content-type"] == media_type
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        suffix = "zip" if fmt == "bundle" else fmt
        filename = rf'attachment; filename="{key}-\d{{8}}T\d{{6}}Z(-\d+)?\.{suffix}"'
        assert re.fullmatch(filename, answer.headers["content-disposition"]), answer.headers
        assert answer.content.startswith(starts), fmt
        assert b"ada@example.com" not in answer.content  # no contact details in an export
        (tmp_path / f"export.{suffix}").write_bytes(answer.content)
    check = verify_bundle(tmp_path / "export.zip")
    assert check.ok, check.reason
    assert check.incident == key and check.files >= 3  # timeline, report pack, announcement

    written = [e for e in _events(key) if e.kind == "export.written"]
    assert [e.payload["format"] for e in written] == list(downloads)
    assert {e.actor for e in written} == {"api-key:compliance-key"}

    unknown = compliance.post(f"/ui/incidents/{key}/export/xlsx", data={"csrf": token})
    assert unknown.status_code == 404 and "text/html" in unknown.headers["content-type"]
    assert "pdf, csv, json, bundle" in unknown.text
    assert len(_events(key)) == written[-1].seq  # nothing exported, nothing recorded
    anonymous = httpx.post(f"{server.url}/ui/incidents/{key}/export/pdf", data={"csrf": token})
    assert anonymous.status_code == 303 and "/ui/login" in anonymous.headers["location"]
    assert compliance.get(f"/ui/incidents/{key}/export/pdf").status_code == 405  # never a GET
    forged = compliance.post(f"/ui/incidents/{key}/export/pdf", data={"csrf": "f" * 64})
    assert forged.status_code == 403 and len(_events(key)) == written[-1].seq

    for offset in ("-1", "abc", "99999999999"):
        bad = compliance.get(f"/ui/incidents/{key}/timeline?offset={offset}")
        assert bad.status_code == 422 and "text/html" in bad.headers["content-type"], offset
        assert "offset must be a whole number" in bad.text and POLICY.search(
            bad.headers["content-security-policy"]
        )


def test_countdown_reads_at_a_glance() -> None:
    from breachflow.api.pages.times import countdown

    now = utcnow()
    assert countdown(now + timedelta(days=2, hours=4, minutes=5), now) == "in 2 d 4 h"
    assert countdown(now + timedelta(hours=3, minutes=12), now) == "in 3 h 12 min"
    assert countdown(now - timedelta(minutes=7, seconds=30), now) == "overdue by 7 min"


@SQLITE_ONLY
def test_the_board_and_the_incident_page_give_the_forecast_while_notices_are_out(app, monkeypatch):
    """With people queued and a slow SMS rate, both pages say when everyone will have been
    sent their notice and that it is after the deadline."""
    server, tokens = app
    key = seed("Forecast", stage="assessed")
    monkeypatch.setenv("BREACH_SMS_RATE_PER_SECOND", "0.000001")
    monkeypatch.setenv("BREACH_EMAIL_RATE_PER_SECOND", "0.000001")
    runtime.reset()
    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        ledger.queue(session, incident, [Channel.EMAIL, Channel.SMS], 1)
    client = _session(server, tokens[Role.COMPLIANCE])
    board = client.get("/ui/").text
    page = client.get(f"/ui/incidents/{key}").text
    assert "Forecast:" in board and ": late by" in board
    assert 'id="forecast"' in page and ": late by" in page


@SQLITE_ONLY
def test_each_report_pack_opens_from_the_incident_page_as_it_was_filed(app) -> None:
    """The incident page links each report's HTML, PDF and JSON, as the regulator gets
    them; a pack changed on disk since it was written is refused, not shown as filed."""
    server, tokens = app
    key = seed("Support credential misuse")
    compliance = _session(server, tokens[Role.COMPLIANCE])
    incident_page = compliance.get(f"/ui/incidents/{key}").text
    links = re.findall(
        rf'href="(/ui/incidents/{key}/reports/\d+\.(?:html|pdf|json))"', incident_page
    )
    assert {link.rsplit(".", 1)[1] for link in links} == {"html", "pdf", "json"}, links
    for link in links:
        answer = compliance.get(link)
        assert answer.status_code == 200, (link, answer.text[:200])
        assert answer.headers["cache-control"] == "no-store"
        assert "script-src" not in answer.headers["content-security-policy"]
    [html_link] = [link for link in links if link.endswith(".html")][:1]
    assert "data-field=" in compliance.get(html_link).text
    assert httpx.get(f"{server.url}{html_link}").status_code == 303  # no session: log in
    assert compliance.get(f"/ui/incidents/{key}/reports/99999.html").status_code == 404
    assert compliance.get(html_link.replace(".html", ".exe")).status_code == 404

    with runtime.database().unit_of_work() as session:
        incident = commands.get_incident(session, key)
        stored = reports(session, incident.id)
        path = next(r for r in stored if f"/{r.id}.html" in html_link).files["html"]
    pack = runtime.settings().reports / Path(path).name
    pack.write_text(pack.read_text(encoding="utf-8") + "<p>edited</p>", encoding="utf-8")
    changed = compliance.get(html_link)
    assert changed.status_code == 409 and "changed since it was written" in changed.text


@SQLITE_ONLY
def test_search_and_days_narrow_the_board_and_the_timeline(app) -> None:
    server, tokens = app
    key = seed("Support credential misuse")
    other = seed("Payroll export left public", stage="assessed")
    compliance = _session(server, tokens[Role.COMPLIANCE])

    board = compliance.get("/ui/", params={"q": "PAYROLL"}).text
    assert other in board and key not in board
    today = utcnow().date()
    detected = compliance.get("/ui/", params={"since": str(today - timedelta(days=3))}).text
    assert key in detected and other in detected  # both detected two days ago
    assert key not in compliance.get("/ui/", params={"since": str(today)}).text

    timeline = f"/ui/incidents/{key}/timeline"
    found = compliance.get(timeline, params={"q": "ico-123"}).text
    assert found.count("<tr data-seq=") == 1 and "report.submitted" in found
    assert "1 event matches" in found
    later = compliance.get(timeline, params={"since": str(today + timedelta(days=1))}).text
    assert "No event matches." in later
    for bad in ({"since": "06/12/2026"}, {"since": "2026-12-06", "until": "2026-12-01"}):
        refused = compliance.get(timeline, params=bad)
        assert refused.status_code == 422 and "text/html" in refused.headers["content-type"]
    assert compliance.get(timeline, params={"q": "x" * 201}).status_code == 422


@SQLITE_ONLY
def test_the_timeline_reads_on_a_phone_and_prints_without_the_page_around_it(
    app, tmp_path: Path
) -> None:
    server, tokens = app
    key = seed("Support credential misuse")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2
        )
        page = phone.new_page()
        _log_in(page, server, tokens[Role.COMPLIANCE])
        page.goto(f"{server.url}/ui/incidents/{key}/timeline")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        first = page.locator("#events tbody tr").first
        assert "Incident declared" in first.inner_text()
        _shot(page, tmp_path / "timeline-phone.png")
        page.emulate_media(media="print")
        assert not page.locator("header.top").is_visible()
        assert not page.locator("form.filters").is_visible()
        assert page.locator("#events").is_visible()
        browser.close()


@SQLITE_ONLY
def test_a_viewer_reads_times_in_their_own_zone_with_utc_beside(app) -> None:
    server, tokens = app
    key = seed("Support credential misuse")
    compliance = _session(server, tokens[Role.COMPLIANCE])
    page = f"/ui/incidents/{key}/timeline"
    assert "Times are UTC" in compliance.get(page).text

    chosen = compliance.post("/ui/timezone", data={"zone": "Asia/Shanghai", "next": page})
    assert chosen.status_code == 303 and chosen.headers["location"] == page
    shown = compliance.get(page).text
    assert "Times are in Asia/Shanghai, with UTC beside them" in shown
    [first] = _events(key)[:1]
    local = first.recorded_at.astimezone(ZoneInfo("Asia/Shanghai"))
    assert f"{local:%Y-%m-%d %H:%M:%S} CST" in shown  # Beijing time...
    assert f"{first.recorded_at:%Y-%m-%d %H:%M:%S} UTC" in shown  # ...and UTC beside it

    compliance.post("/ui/timezone", data={"zone": "Mars/Olympus", "next": "//evil.example"})
    assert "Times are UTC" in compliance.get(page).text  # not a zone: back to UTC
    assert (
        compliance.post("/ui/timezone", data={"next": "//evil.example"}).headers["location"]
        == "/ui/"
    )  # never sent off-site


@SQLITE_ONLY
def test_hostile_cookies_and_posts_get_a_4xx_not_a_500(app) -> None:
    """Issue 17, item 9: a session cookie with a 5,000-digit or non-ASCII expiry, and forms
    with more fields than any of ours, were 500s before any key was checked."""
    server, _ = app
    for cookie in (b"breach_session=abc." + b"9" * 5000 + b".def", b"breach_session=a.\xb9\xb2.d"):
        answer = httpx.get(f"{server.url}/ui/", headers=[(b"cookie", cookie)])
        assert answer.status_code == 303 and "/ui/login" in answer.headers["location"]
    too_many = {f"field{n}": "x" for n in range(12)}
    for path in ("/ui/login", "/report"):
        answer = httpx.post(f"{server.url}{path}", data=too_many)
        assert answer.status_code == 400 and "text/html" in answer.headers["content-type"], path
    moved = httpx.post(f"{server.url}/ui/timezone", data=too_many)
    assert moved.status_code == 303 and moved.headers["location"] == "/ui/"


@SQLITE_ONLY
def test_logging_out_ends_the_session_on_the_server(app) -> None:
    """Issue 17, item 10: a cookie copied before logging out worked for 8 more hours."""
    server, tokens = app
    browser = _session(server, tokens[Role.COMPLIANCE])
    copied = browser.cookies.get("breach_session")
    assert copied and browser.get("/ui/").status_code == 200
    assert browser.post("/ui/logout").status_code == 303

    thief = httpx.Client(base_url=server.url, cookies={"breach_session": copied})
    replayed = thief.get("/ui/")
    assert replayed.status_code == 303 and "/ui/login" in replayed.headers["location"]
    again = _session(server, tokens[Role.COMPLIANCE])  # logging in again works at once
    assert again.get("/ui/").status_code == 200
