"""The HTTP app `breach serve` runs: Twilio status callbacks and the public notice page.

The app runs under uvicorn on a loopback port in a background thread and is spoken to
over real HTTP: by httpx with signatures computed by the twilio SDK's RequestValidator, and
by the local Twilio stand-in, which posts its own signed callbacks after a real send.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from types import TracebackType

import httpx
import pytest
import uvicorn
import yaml
from playwright.sync_api import sync_playwright
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from breachflow.api.app import create_app
from breachflow.api.callbacks import _apply as apply_callback
from breachflow.flows.notify.dispatch import pacer_for, usable_chain
from breachflow.flows.notify.progress import record_provider_reports
from breachflow.models import commands, ledger, runtime
from breachflow.models.delivery import (
    Channel,
    DeliveryStatus,
    OutboundMessage,
    ProviderEvent,
    ProviderEventStatus,
)
from breachflow.models.incident import IncidentState
from breachflow.models.notice import parse_notice_texts
from breachflow.models.notification import DeliveryReport
from breachflow.models.timeline import TimelineEvent, advance, verify_chain
from breachflow.notifiers.factory import notifier_for
from tests.conftest import SQLITE_ONLY, free_port
from tests.flows.notify.test_fallback import (
    CHAIN,
    claim,
    ledger_rows,
    person,
    policies,
    queue,
    record,
    result,
    seed,
    trail,
)
from tests.testkit.factories import EXAMPLE_NOTICE
from tests.testkit.twilio_server import TwilioServer

ACCOUNT = "AC" + "3f" * 16
TOKEN = "callback-api-token-7d1e"
FROM = "+15005550006"
PHONE_1, PHONE_2, PHONE_3 = "+447400123401", "+447400123402", "+447400123403"


class AppServer:
    """``api.app.create_app()`` under uvicorn on 127.0.0.1:``port`` in a daemon thread."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(),
            host="127.0.0.1",
            port=port,
            log_level="critical",  # tracebacks would quote request data
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # as `breach serve`: the app reads them (api/clients.py)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def callback_url(self) -> str:
        return f"{self.url}/callbacks/twilio"

    def __enter__(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_live(monkeypatch: pytest.MonkeyPatch, **env: str) -> AppServer:
    """Live-mode Twilio settings with the public URL of a new app server (not started)."""
    port = free_port()
    app = AppServer(port)
    defaults = {
        "BREACH_NOTIFIER_MODE": "live",
        "BREACH_TWILIO_ACCOUNT_SID": ACCOUNT,
        "BREACH_TWILIO_AUTH_TOKEN": TOKEN,
        "BREACH_TWILIO_FROM_NUMBER": FROM,
        "BREACH_PUBLIC_URL": app.url,
        # The app and the providers' stand-ins share this machine: a local address is right.
        "BREACH_ALLOW_LOCAL_PUBLIC_URL": "true",
    }
    for name, value in (defaults | env).items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    return app


@pytest.fixture
def app(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppServer]:
    with serve_live(monkeypatch) as server:
        yield server


def message_params(sid: str, status: str, to: str, **extra: str) -> dict[str, str]:
    """A message status callback's form, as Twilio sends it."""
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "From": FROM,
        "To": to,
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        **extra,
    }


def post(
    app: AppServer,
    params: dict[str, str],
    *,
    signed_url: str | None = None,
    token: str = TOKEN,
    signature: str | None = "compute",
) -> httpx.Response:
    """POST ``params`` to the app's callback URL, signed for ``signed_url`` with ``token``."""
    headers = {}
    if signature == "compute":
        signature = RequestValidator(token).compute_signature(
            signed_url or app.callback_url, params
        )
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return httpx.post(app.callback_url, data=params, headers=headers, timeout=30)


def sent_sms(db, settings, tmp_path, people: dict[str, str]) -> tuple[str, dict[str, str]]:
    """People with only a phone, their SMS accepted by Twilio: (incident key, sid by person)."""
    key = seed(db, settings, tmp_path, [person(pid, phone=phone) for pid, phone in people.items()])
    queue(db, key)
    leased = claim(db, key, Channel.SMS)
    sids = {pid: f"SM{n:032x}" for n, pid in enumerate(people, start=1)}
    record(
        db,
        [result(leased[pid], DeliveryStatus.SENT, provider_message_id=sids[pid]) for pid in people],
    )
    return key, sids


def reports_kept(db) -> list[tuple[str, str, bool]]:
    with db.unit_of_work() as session:
        rows = session.execute(
            select(
                DeliveryReport.provider_message_id, DeliveryReport.status, DeliveryReport.applied
            ).order_by(DeliveryReport.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def dispatcher_look(db, key: str) -> None:
    """What a dispatcher does between batches: apply reports that came before their send's
    result was recorded (Twilio's callbacks can be that fast)."""
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        ledger.apply_waiting_reports(session, incident, policies(), CHAIN)


def wait_until(check, what: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- callbacks -----------------------------------------------------------------------------------


def test_a_correctly_signed_delivery_report_marks_the_row_delivered(db, settings, tmp_path, app):
    key, sids = sent_sms(db, settings, tmp_path, {"A": PHONE_1})

    reply = post(app, message_params(sids["A"], "delivered", PHONE_1))

    assert reply.status_code == 204
    [row] = ledger_rows(db, key)["A"]
    assert (row.state, row.delivered_at is not None) == ("delivered", True)
    assert reports_kept(db) == [(sids["A"], "delivered", True)]


def test_a_progress_report_is_accepted_and_records_nothing(db, settings, tmp_path, app):
    key, sids = sent_sms(db, settings, tmp_path, {"A": PHONE_1})
    assert post(app, message_params(sids["A"], "sent", PHONE_1)).status_code == 204
    assert trail(ledger_rows(db, key)["A"]) == [("sms", "sent")]
    assert reports_kept(db) == []


def test_forged_tampered_or_unsigned_reports_get_403_and_change_nothing(
    db, settings, tmp_path, app
):
    key, sids = sent_sms(db, settings, tmp_path, {"A": PHONE_1})
    genuine = message_params(sids["A"], "undelivered", PHONE_1, ErrorCode="30003")
    signature = RequestValidator(TOKEN).compute_signature(app.callback_url, genuine)
    forgeries = {
        "another account's token": post(app, genuine, token="not-our-token"),
        "signed for another URL": post(
            app, genuine, signed_url=app.callback_url.replace("127.0.0.1", "localhost")
        ),
        "a parameter changed after signing": post(
            app,
            genuine | {"MessageStatus": "delivered", "SmsStatus": "delivered"},
            signature=signature,
        ),
        "no signature": post(app, genuine, signature=None),
        "an empty signature": post(app, genuine, signature=""),
        "garbage": post(app, genuine, signature="bm90IGEgc2lnbmF0dXJl"),
    }

    assert {why: reply.status_code for why, reply in forgeries.items()} == dict.fromkeys(
        forgeries, 403
    )
    assert all(PHONE_1.lstrip("+") not in reply.text for reply in forgeries.values())
    assert trail(ledger_rows(db, key)["A"]) == [("sms", "sent")]
    assert reports_kept(db) == []


def test_a_report_for_an_unknown_message_is_kept_and_applied_once_the_send_is_recorded(
    db, settings, tmp_path, app
):
    key = seed(db, settings, tmp_path, [person("A", phone=PHONE_1)])
    queue(db, key)
    leased = claim(db, key, Channel.SMS)  # being sent: Twilio's SID is not recorded yet
    sid = "SM" + "e1" * 16

    reply = post(app, message_params(sid, "delivered", PHONE_1))

    assert reply.status_code == 204
    assert reports_kept(db) == [(sid, "delivered", False)]
    assert trail(ledger_rows(db, key)["A"]) == [("sms", "sending")]

    record(db, [result(leased["A"], DeliveryStatus.SENT, provider_message_id=sid)])
    with db.unit_of_work() as session:  # what the dispatcher does on its next look
        incident = commands.get_incident(session, key)
        assert ledger.apply_waiting_reports(session, incident, policies(), CHAIN) == 1

    assert trail(ledger_rows(db, key)["A"]) == [("sms", "delivered")]
    assert reports_kept(db) == [(sid, "delivered", True)]


def test_an_undelivered_text_moves_the_person_to_their_next_channel(db, settings, tmp_path, app):
    key, sids = sent_sms(db, settings, tmp_path, {"A": PHONE_1, "B": PHONE_2})

    reply = post(app, message_params(sids["A"], "undelivered", PHONE_1, ErrorCode="30003"))

    assert reply.status_code == 204
    rows = ledger_rows(db, key)
    assert trail(rows["A"]) == [("sms", "failed_permanent"), ("voice", "queued")]
    assert rows["A"][0].last_error == "sms: twilio error 30003"
    assert trail(rows["B"]) == [("sms", "sent")]  # the others are not touched
    # Twilio retries a callback it thinks was lost: the repeat changes nothing more.
    again = post(app, message_params(sids["A"], "undelivered", PHONE_1, ErrorCode="30003"))
    assert again.status_code == 204
    assert trail(ledger_rows(db, key)["A"]) == [("sms", "failed_permanent"), ("voice", "queued")]


def test_how_provider_reports_moved_the_ledger_goes_on_the_timeline_at_each_look(
    db, settings, tmp_path, app
):
    key, sids = sent_sms(db, settings, tmp_path, {"A": PHONE_1, "B": PHONE_2})
    assert record_provider_reports() == [key]  # the first look: the counts as they stand
    assert post(app, message_params(sids["A"], "delivered", PHONE_1)).status_code == 204
    reply = post(app, message_params(sids["B"], "undelivered", PHONE_2, ErrorCode="30003"))
    assert reply.status_code == 204

    assert record_provider_reports() == [key]
    assert record_provider_reports() == []  # nothing moved since: nothing more to say
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        looks = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident.id)
            .where(TimelineEvent.kind == "notifications.reported")
            .order_by(TimelineEvent.seq)
        ).all()
        assert [look.payload["change"] for look in looks] == [
            {"sms": {"sent": 2}},
            {"sms": {"delivered": 1, "failed_permanent": 1, "sent": -2}, "voice": {"queued": 1}},
        ]
        assert looks[-1].payload["by_channel"] == ledger.channel_counts(session, incident)
        assert verify_chain(session, incident).ok


def test_twilio_posts_its_own_signed_callbacks_after_real_sends(
    db, settings, tmp_path, app, monkeypatch
):
    """The real SMS and voice notifiers, built from the settings, send through the Twilio
    stand-in, which then calls the app back as Twilio would (signed, form-encoded)."""
    key = seed(
        db,
        settings,
        tmp_path,
        [person("A", phone=PHONE_1), person("B", phone=PHONE_2), person("C", phone=PHONE_3)],
    )
    queue(db, key)
    phones = {"A": PHONE_1, "B": PHONE_2, "C": PHONE_3}
    with TwilioServer(auth_token=TOKEN) as twilio:
        monkeypatch.setenv("BREACH_TWILIO_BASE_URL", twilio.url)
        runtime.reset()
        twilio.final(PHONE_1, "delivered")
        twilio.final(PHONE_2, "undelivered", error_code=30005)
        twilio.error(PHONE_3, 21614, times=1)  # a landline, to text: C is called instead
        twilio.final(PHONE_3, "busy")  # ... and does not answer

        def send(channel: Channel, expected: set[str]) -> None:
            leased = claim(db, key, channel)
            assert set(leased) == expected
            messages = [
                OutboundMessage(
                    notification_id=notification_id,
                    message_id=f"{key}-{pid}-{channel}",
                    channel=channel,
                    recipient=phones[pid],
                    locale="en",
                    subject="Security incident",
                    text="Example Operator Ltd.: a security incident involved your data.",
                )
                for pid, notification_id in leased.items()
            ]
            notifier = notifier_for(
                channel, runtime.settings(), pacer=pacer_for(channel, runtime.settings())
            )
            record(db, asyncio.run(notifier.send(messages)))

        send(Channel.SMS, {"A", "B", "C"})
        texts = twilio.wait_for_callbacks(4, timeout=30)  # A: sent, delivered; B: sent, undelivered
        assert [c.status for c in texts] == [204] * 4
        wait_until(
            lambda: dispatcher_look(db, key) or len(ledger_rows(db, key)["B"]) == 2,
            "B's next channel",
        )
        send(Channel.VOICE, {"B", "C"})  # B after the report, C after Twilio's 21614
        posted = twilio.wait_for_callbacks(6, timeout=30)  # B answers, C is busy
        accepted = sorted((a.resource, a.to) for a in twilio.accepted)

    assert accepted == [
        ("Calls", PHONE_2),
        ("Calls", PHONE_3),
        ("Messages", PHONE_1),
        ("Messages", PHONE_2),
    ]
    assert {c.url for c in posted} == {app.callback_url}
    assert [c.status for c in posted] == [204] * 6
    rows = wait_until(
        lambda: (
            dispatcher_look(db, key) is None
            and (r := ledger_rows(db, key))
            and r["B"][-1].state == "delivered"
            and r["C"][-1].state == "failed_temporary"
            and r
        ),
        "the call reports to be applied",
    )
    assert trail(rows["A"]) == [("sms", "delivered")]
    assert trail(rows["B"]) == [("sms", "failed_permanent"), ("voice", "delivered")]
    assert rows["B"][0].last_error == "sms: twilio error 30005"
    assert trail(rows["C"]) == [("sms", "failed_permanent"), ("voice", "failed_temporary")]
    assert rows["C"][0].last_error == "sms: twilio error 21614: 'To' number is not a mobile number"
    call = rows["C"][1]
    assert (call.last_error, call.attempts, call.retry_at is not None) == (
        "voice: call busy",
        1,
        True,
    )


def test_a_failure_report_moves_people_only_to_channels_this_installation_can_send_on(
    db, settings, tmp_path, monkeypatch
):
    """Twilio is configured but letters are not (no BREACH_LETTER_DROPBOX); the incident's
    chain is sms, letter. A text that was not delivered leaves the person unreachable, as
    the dispatcher records it when the report comes with the send's result."""
    serve_live(monkeypatch)  # a live installation's settings; this test needs no server
    key = seed(db, settings, tmp_path, [person("A", phone=PHONE_1, address="6 Bridge St|Cardiff")])
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        commands.update_incident(session, incident, "test", {"channel_chain": ["sms", "letter"]})
    with db.unit_of_work() as session:  # what `breach run` would start with here
        incident = commands.get_incident(session, key)
        chain, skipped = usable_chain(session, incident, runtime.settings())
    assert (chain, list(skipped)) == ([Channel.SMS], ["letter"])
    queue(db, key, chain)
    leased = claim(db, key, Channel.SMS)
    sid = "SM" + "f0" * 16
    record(db, [result(leased["A"], DeliveryStatus.SENT, provider_message_id=sid)])

    outcome = apply_callback(  # what the endpoint does with a verified report
        ProviderEvent(
            provider_message_id=sid,
            status=ProviderEventStatus.FAILED_PERMANENT,
            detail="twilio error 30003",
        )
    )

    assert outcome == "applied"
    assert trail(ledger_rows(db, key)["A"]) == [("sms", "failed_permanent")]
    with db.unit_of_work() as session:
        assert ledger.unfinished(session, commands.get_incident(session, key)) == 0


# --- the notice page -----------------------------------------------------------------------------


def test_the_notice_page_is_served_escaped_and_only_once_the_incident_notifies(
    db, settings, tmp_path, app
):
    key = seed(db, settings, tmp_path, [person("A", email="a@example.com")])
    raw = yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8"))
    raw["en"]["what_happened"] = "A <script>alert('x')</script> & <b>bold</b> export happened."
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        commands.set_notice(session, incident, parse_notice_texts(raw), "test")

    def page(locale: str, incident_key: str = key) -> httpx.Response:
        return httpx.get(f"{app.url}/notices/{incident_key}/{locale}", timeout=30)

    assert page("en").status_code == 404  # declared: nobody has been told yet
    assert page("en", "INC-1999-0001").status_code == 404
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        advance(session, incident, IncidentState.ASSESSED, "test")
    assert page("en").status_code == 404  # assessed is not notifying
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        advance(session, incident, IncidentState.NOTIFYING, "test")

    english = page("en")
    assert english.status_code == 200
    assert english.headers["content-type"].startswith("text/html")
    csp = english.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    html = english.text
    assert "A &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script" not in html and "<b>bold" not in html
    assert key in html and "What you can do to protect yourself" in html
    assert "Dear customer" in html  # nobody's name: the page is the same for everyone
    assert "Person A" not in html and "a@example.com" not in html

    chinese = page("zh-CN")
    assert chinese.status_code == 200
    assert raw["zh-CN"]["what_happened"] in chinese.text
    assert "content-security-policy" in chinese.headers
    # A locale with no texts gets the default locale's page.
    assert "What happened" in page("fr").text


CHROMIUM = "/usr/bin/chromium"  # Debian's; scripts/test installs it


@SQLITE_ONLY
def test_the_chinese_notice_page_reads_on_a_phone_with_no_cjk_font(db, settings, tmp_path, app):
    """At phone width the page is laid out for the phone (a viewport), and its Chinese is
    drawn with the web font the page carries (this machine has no CJK font: without it
    the text would be boxes), in Beijing time."""
    key = seed(db, settings, tmp_path, [person("A", email="a@example.com", locale="zh-CN")])
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        advance(session, incident, IncidentState.ASSESSED, "test")
        advance(session, incident, IncidentState.NOTIFYING, "test")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, device_scale_factor=2
        )
        page = phone.new_page()
        page.goto(f"{app.url}/notices/{key}/zh-CN")
        page.evaluate("document.fonts.ready.then(() => true)")
        assert page.evaluate("window.innerWidth") == 390  # not a 980-pixel desktop page
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate(
            "[...document.fonts].some(f => f.family.includes('Breachflow CJK')"
            " && f.status === 'loaded')"
        )
        assert page.evaluate("document.fonts.check('16px \"Breachflow CJK\"', '事件基本情况')")
        assert "（UTC+08:00）" in page.inner_text("body")
        page.screenshot(path=tmp_path / "notice-phone.png", full_page=True)
        browser.close()


def test_the_announcement_site_is_served_with_every_notice_text_escaped(
    db, settings, tmp_path, app
):
    from breachflow.flows.announce.decision import operator_decision
    from breachflow.flows.announce.publication import publish

    key = seed(db, settings, tmp_path, [person("A", email="a@example.com")])
    raw = yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8"))
    raw["en"]["subject_line"] = "Notice <script>alert('x')</script>"
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        commands.set_notice(session, incident, parse_notice_texts(raw), "test")
    operator_decision(key, "carol", "Individual notice judged difficult", waive=False)
    publish(key, "carol")

    index = httpx.get(f"{app.url}/site/", timeout=30)
    page = httpx.get(f"{app.url}/site/announcements/{key}/en.html", timeout=30)
    feed = httpx.get(f"{app.url}/site/feed.xml", timeout=30)
    font = httpx.get(f"{app.url}/site/fonts/cjk-sc.woff2", timeout=30)
    assert [r.status_code for r in (index, page, feed, font)] == [200] * 4
    for served in (index.text, page.text, feed.text):
        assert "<script" not in served and "&lt;script&gt;" in served
    assert "Person A" not in page.text and "a@example.com" not in page.text
