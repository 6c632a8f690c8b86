"""A whole response in live mode across every channel, against local providers.

Real parts throughout: the `incident_response` Prefect flow; aiosmtpd for email; the twilio
SDK against tests/twilio_server.py for SMS and calls, which posts signed status callbacks
to `breach serve`'s app running under uvicorn at BREACH_PUBLIC_URL; FCM's HTTP v1 and
token endpoint from tests/push_servers.py; letters rendered by WeasyPrint into a vendor's
drop folder. People are imported from a CSV as an operator would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from breachflow.flows.incident import incident_response
from breachflow.models import commands, ledger, runtime
from breachflow.models.subject import Subject
from breachflow.models.timeline import TimelineEvent
from breachflow.notifiers.segments import encoding, segments
from tests.api.test_callbacks import (
    ACCOUNT,
    FROM,
    TOKEN,
    AppServer,
    serve_live,
)
from tests.conftest import BREACH, RecordingHandler
from tests.flows.notify.test_fallback import ledger_rows, person, seed, trail
from tests.testkit.push_servers import FakeFcm, FcmReply
from tests.testkit.twilio_server import TwilioServer

pytestmark = pytest.mark.usefixtures("prefect_api")

REACHED = {"sent", "delivered"}


def fcm_token(n: int) -> str:
    return f"fT{n:04d}xQ:APA91b" + "Lq7w_k-2" * 16


@dataclass
class Live:
    """The providers of one live installation, and where its letters go."""

    smtp: RecordingHandler
    twilio: TwilioServer
    fcm: FakeFcm
    app: AppServer
    dropbox: Path

    def notice_link(self, key: str, locale: str) -> str:
        return f"{self.app.url}/notices/{key}/{locale}"


@pytest.fixture
def live(settings, live_smtp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    """Live mode with every channel configured; rates high enough not to slow the test."""
    with TwilioServer(auth_token=TOKEN) as twilio, FakeFcm() as fcm:
        account = tmp_path / "fcm-service-account.json"
        account.write_text(json.dumps(fcm.service_account()), encoding="utf-8")
        dropbox = tmp_path / "vendor-dropbox"
        app = serve_live(
            monkeypatch,
            BREACH_TWILIO_BASE_URL=twilio.url,
            BREACH_FCM_SERVICE_ACCOUNT_FILE=str(account),
            BREACH_FCM_BASE_URL=fcm.url,
            BREACH_LETTER_DROPBOX=str(dropbox),
            BREACH_SMS_RATE_PER_SECOND="1000",
            BREACH_VOICE_RATE_PER_SECOND="1000",
            BREACH_PUSH_RATE_PER_SECOND="1000",
            BREACH_VOICE_MAX_ATTEMPTS="2",
            BREACH_RETRY_BASE_SECONDS="0.05",
            BREACH_RETRY_MAX_SECONDS="0.2",
            # How long notify waits for SMS and call outcomes. The stand-in reports at once,
            # but a loaded machine may take seconds to take them: waiting costs nothing
            # once every report is in.
            BREACH_REPORT_WAIT_SECONDS="20",
        )
        with app:
            yield Live(live_smtp, twilio, fcm, app, dropbox)


def reached_on(rows) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """Per person, the channel of their row that reached them (None: nobody reached them)."""
    result: dict[str, str | None] = {}
    for pid, person_rows in rows.items():
        reached = [row.channel for row in person_rows if row.state in REACHED]
        assert len(reached) <= 1, f"{pid} was reached {len(reached)} times"
        result[pid] = reached[0] if reached else None
    return result


def letter_batches(dropbox: Path) -> list[Path]:
    """The batch folders a vendor would collect (hidden ones are still being written)."""
    return sorted(p for p in dropbox.iterdir() if p.is_dir() and not p.name.startswith("."))


def manifest_rows(batch: Path) -> list[dict[str, str]]:
    text = (batch / "manifest.csv").read_bytes().decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


# --- every channel, every fallback, one run -------------------------------------------------------

PEOPLE = [
    # reached by push; their email is never needed
    person("P01", push=fcm_token(1), email="p01@example.com", country="GB"),
    # push token unregistered: email instead, in Chinese
    person("P02", push=fcm_token(2), email="p02@example.cn", locale="zh-CN", country="CN"),
    person("P03", email="p03@example.com", country="GB"),
    person("P04", email="p04@example.cn", locale="zh-CN", country="CN"),
    # the mail server refuses the address (550): a text instead
    person("P05", email="p05@example.com", phone="+447400123405", country="GB"),
    # Chinese text: the notice is far over the segment budget, so the short text with the link
    person("P06", phone="+8613800138006", locale="zh-CN", country="CN"),
    # a landline: Twilio refuses the text (21614), so they are called
    person("P07", phone="+447400123407", country="GB"),
    person("P08", address="1 Test Street|London|SW1A 1AA", country="GB"),
    person("P09", address="北京市朝阳区|建国路1号|100022", locale="zh-CN", country="CN"),
    person("P10", push=fcm_token(10), address="3 Mill Lane|York|YO1 7HH", country="GB"),
    # the only contact is a number that is not a number: unreachable from the start
    person("P11", phone="12345", country="GB"),
    person("P12", email="p12@example.com", address="4 Church Street|Bath|BA1 1AA"),
]
PHONES = {p["subject_id"]: p["phone"] for p in PEOPLE if p.get("phone")}
EXPECTED = {
    "P01": [("push", "sent")],
    "P02": [("push", "failed_permanent"), ("email", "sent")],
    "P03": [("email", "sent")],
    "P04": [("email", "sent")],
    "P05": [("email", "failed_permanent"), ("sms", "reached")],
    "P06": [("sms", "reached")],
    "P07": [("sms", "failed_permanent"), ("voice", "reached")],
    "P08": [("letter", "sent")],
    "P09": [("letter", "sent")],
    "P10": [("push", "sent")],
    "P11": [("none", "failed_permanent")],
    "P12": [("email", "sent")],
}


def test_live_run_reaches_each_person_once_on_the_right_channel(db, settings, tmp_path, live):
    live.fcm.replies[fcm_token(2)] = FcmReply.unregistered()
    live.smtp.always["p05@example.com"] = 550
    live.twilio.error(PHONES["P07"], 21614, times=1)  # the text only; the call goes through
    key = seed(db, settings, tmp_path, PEOPLE)

    summary = incident_response(key, requested_by="test-live")

    assert summary.state == "reporting"  # notified; reports to file
    assert (summary.affected, summary.notified, summary.unreachable) == (12, 11, 1)
    rows = ledger_rows(db, key)
    # SMS and calls are "sent" when Twilio accepts them, "delivered" once it reports so.
    observed = {
        pid: [(c, "reached" if c in ("sms", "voice") and s in REACHED else s) for c, s in trail(r)]
        for pid, r in rows.items()
    }
    assert observed == EXPECTED
    assert reached_on(rows) == {
        "P01": "push", "P02": "email", "P03": "email", "P04": "email", "P05": "sms",
        "P06": "sms", "P07": "voice", "P08": "letter", "P09": "letter", "P10": "push",
        "P11": None, "P12": "email",
    }  # fmt: skip
    assert rows["P02"][0].last_error == "push: push token not registered"
    assert rows["P05"][0].last_error.startswith("email: 550 5.1.1 User unknown")
    assert "p05@example.com" not in rows["P05"][0].last_error
    assert rows["P07"][0].last_error == (
        "sms: twilio error 21614: 'To' number is not a mobile number"
    )
    unreachable = rows["P11"][0].last_error
    assert unreachable.startswith("no channel left: sms: invalid phone number")
    assert unreachable.endswith("; no push token, email address or postal address given")
    assert "12345" not in unreachable
    assert summary.unreachable_reasons == {unreachable: 1}
    with db.unit_of_work() as session:  # the dead token is remembered on the person
        incident = commands.get_incident(session, key)
        problems = dict(
            session.execute(
                select(Subject.external_id, Subject.push_problem).where(
                    Subject.incident_id == incident.id, Subject.push_problem.is_not(None)
                )
            ).all()
        )
    assert list(problems) == ["P02"] and "not registered" in problems["P02"]

    # Push: one request per person tried, the unregistered token included; nothing twice.
    assert live.fcm.send_requests == 3 and live.fcm.rejections == []
    assert sorted(m["token"] for m in live.fcm.accepted) == [fcm_token(1), fcm_token(10)]
    assert len({m["data"]["notice_id"] for m in live.fcm.accepted}) == 2
    assert {m["data"]["link"] for m in live.fcm.accepted} == {live.notice_link(key, "en")}

    # Email: one message each to the four it reached, in their language; the 550 tried once.
    received = live.smtp.by_recipient()
    assert {address: len(messages) for address, messages in received.items()} == {
        "p02@example.cn": 1,
        "p03@example.com": 1,
        "p04@example.cn": 1,
        "p12@example.com": 1,
    }
    assert received["p02@example.cn"][0]["Content-Language"] == "zh-CN"
    assert received["p03@example.com"][0]["Content-Language"] == "en"
    assert live.smtp.attempts["p05@example.com"] == 1
    assert "p01@example.com" not in live.smtp.attempts  # reached by push: no email

    # Twilio: two texts and one call accepted; P07's text refused once; nothing repeated.
    accepted = Counter((a.resource, a.to) for a in live.twilio.accepted)
    assert accepted == {
        ("Messages", PHONES["P05"]): 1,
        ("Messages", PHONES["P06"]): 1,
        ("Calls", PHONES["P07"]): 1,
    }
    assert live.twilio.attempts[PHONES["P07"]] == 2  # the refused text, then the call
    assert live.twilio.unauthorized == 0
    texts = {a.to: a for a in live.twilio.accepted if a.resource == "Messages"}
    for accepted_text in texts.values():
        assert accepted_text.param("From") == FROM
        assert accepted_text.param("StatusCallback") == live.app.callback_url
        assert accepted_text.account_sid == ACCOUNT
    chinese = texts[PHONES["P06"]].param("Body") or ""
    assert encoding(chinese) == "UCS-2"
    assert chinese.endswith(live.notice_link(key, "zh-CN"))
    assert key in chinese and "事件情况：" not in chinese  # the short text, not the notice
    assert segments(chinese) <= 2
    english = texts[PHONES["P05"]].param("Body") or ""
    assert encoding(english) == "GSM-7" and english.endswith(live.notice_link(key, "en"))
    [call] = [a for a in live.twilio.accepted if a.resource == "Calls"]
    assert "Polly.Joanna" in (call.param("Twiml") or "")

    # Letters: a batch folder with a manifest and one PDF per letter, for the vendor.
    batches = letter_batches(live.dropbox)
    assert batches, "no letter batch was handed over"
    letters = [(batch, row) for batch in batches for row in manifest_rows(batch)]
    assert sorted(row["recipient_name"] for _, row in letters) == ["Person P08", "Person P09"]
    for batch, row in letters:
        pdf = batch / row["file"]
        assert pdf.read_bytes().startswith(b"%PDF")
        assert row["pages"] == str(len(PdfReader(pdf).pages))
    english_letter = next(batch / row["file"] for batch, row in letters if row["locale"] == "en")
    text = "\n".join(page.extract_text() for page in PdfReader(english_letter).pages)
    assert key in text and "1 Test Street" in text
    assert sorted(p.name for b in batches for p in b.glob("*.pdf")) == sorted(
        row["file"] for _, row in letters
    )


# --- outcomes Twilio reports later: retries and fallbacks driven by status callbacks ------------


def test_reported_outcomes_drive_delivery_call_retries_and_fallback(db, settings, tmp_path, live):
    """Q1's text is delivered. Q2's is undelivered, so Q2 is called and answers. Q3 has a
    landline and does not answer: called twice (BREACH_VOICE_MAX_ATTEMPTS), then a letter.
    The run waits for these reports (BREACH_REPORT_WAIT_SECONDS) and follows them up."""
    phones = {"Q1": "+447400123411", "Q2": "+447400123412", "Q3": "+447400123413"}
    live.twilio.final(phones["Q1"], "delivered")
    live.twilio.final(phones["Q2"], "undelivered", error_code=30005)
    live.twilio.error(phones["Q3"], 21614, times=1)
    live.twilio.final(phones["Q3"], "busy")
    key = seed(
        db,
        settings,
        tmp_path,
        [
            person("Q1", phone=phones["Q1"]),
            person("Q2", phone=phones["Q2"]),
            person("Q3", phone=phones["Q3"], address="5 Quay Street|Bristol|BS1 4DJ"),
        ],
    )

    summary = incident_response(key, requested_by="test-live")

    [first, *_] = live.twilio.wait_for_callbacks(1, timeout=30)
    assert first.status == 204  # the app took Twilio's report
    # Texts: "sent" and the final status each; calls: the final status only.
    posted = live.twilio.wait_for_callbacks(2 + 2 + 1 + 2, timeout=30)
    assert [c.status for c in posted] == [204] * 7
    assert Counter((a.resource, a.to) for a in live.twilio.accepted) == {
        ("Messages", phones["Q1"]): 1,
        ("Messages", phones["Q2"]): 1,
        ("Calls", phones["Q2"]): 1,
        ("Calls", phones["Q3"]): 2,
    }
    rows = ledger_rows(db, key)
    assert {pid: trail(r) for pid, r in rows.items()} == {
        "Q1": [("sms", "delivered")],
        "Q2": [("sms", "failed_permanent"), ("voice", "delivered")],
        "Q3": [("sms", "failed_permanent"), ("voice", "failed_permanent"), ("letter", "sent")],
    }
    assert rows["Q2"][0].last_error == "sms: twilio error 30005"
    assert rows["Q3"][1].attempts == 2
    assert rows["Q3"][1].last_error == "voice: gave up after 2 attempts: call busy"
    assert summary.state == "reporting"  # notified; reports to file
    assert (summary.notified, summary.unreachable, summary.pending) == (3, 0, 0)
    [batch] = letter_batches(live.dropbox)
    assert [row["recipient_name"] for row in manifest_rows(batch)] == ["Person Q3"]


def test_a_call_reported_after_the_run_is_followed_up_by_breach_dispatch(
    db, settings, tmp_path, live, monkeypatch, prefect_api
):
    """Twilio reports the call busy only after notify stopped waiting: the person shows as
    in progress, and `breach dispatch` calls them again."""
    monkeypatch.setenv("BREACH_REPORT_WAIT_SECONDS", "0.2")
    runtime.reset()
    phone = "+447400123421"
    live.twilio.callback_delay = 3.0  # the call rings out before Twilio reports it
    live.twilio.final(phone, "busy")
    key = seed(
        db,
        settings,
        tmp_path,
        [person("V", phone=phone, address="7 Castle Street|Edinburgh|EH2 3AH")],
    )
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        commands.update_incident(session, incident, "test", {"channel_chain": ["voice", "letter"]})

    summary = incident_response(key, requested_by="test-live")
    [busy] = live.twilio.wait_for_callbacks(1, timeout=30)

    assert summary.state == "reporting"  # notified; reports to file
    assert busy.status == 204
    assert trail(ledger_rows(db, key)["V"]) == [("voice", "failed_temporary")]
    with db.unit_of_work() as session:
        people = ledger.people(session, commands.get_incident(session, key))
    assert (people.reached, people.pending) == (0, 1)

    live.twilio.callback_delay = 0.0
    live.twilio.final(phone, "completed")  # this time they answer
    dispatched = subprocess.run(
        [BREACH, "dispatch", key],
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert dispatched.returncode == 0, dispatched.stdout + dispatched.stderr
    assert "1 by voice" in dispatched.stdout
    assert [a.resource for a in live.twilio.accepted] == ["Calls", "Calls"]
    [_, answered] = live.twilio.wait_for_callbacks(2, timeout=30)
    assert answered.status == 204
    [row] = ledger_rows(db, key)["V"]
    assert (row.channel, row.state, row.attempts) == ("voice", "delivered", 2)


def test_a_slow_channel_does_not_hold_up_the_others(
    db, settings, tmp_path, live, monkeypatch: pytest.MonkeyPatch
):
    """Channels are sent side by side: with calls first in the chain and paced at two a
    second, the emails still leave at once instead of waiting for the calls."""
    monkeypatch.setenv("BREACH_VOICE_RATE_PER_SECOND", "2")
    runtime.reset()
    callers = [person(f"V{n}", phone=f"+4474001235{n:02d}") for n in range(1, 7)]
    readers = [person(f"E{n:02d}", email=f"e{n:02d}@example.com") for n in range(1, 31)]
    key = seed(db, settings, tmp_path, callers + readers)
    with db.unit_of_work() as session:
        commands.get_incident(session, key).channel_chain = ["voice", "email"]

    summary = incident_response(key, requested_by="test-live")

    assert (summary.affected, summary.notified) == (36, 36)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        batches = session.execute(
            select(TimelineEvent.payload, TimelineEvent.recorded_at)
            .where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == "notices.batch_sent",
            )
            .order_by(TimelineEvent.seq)
        ).all()
    finished = {payload["channel"]: at for payload, at in batches if payload.get("sent")}
    assert set(finished) == {"voice", "email"}
    # Six calls at two a second take over two seconds; the emails were recorded before.
    assert finished["email"] < finished["voice"]
    calls = sorted(a.at for a in live.twilio.accepted if a.resource == "Calls")
    assert len(calls) == 6 and calls[-1] - calls[0] >= 5 / 2 - 0.05
