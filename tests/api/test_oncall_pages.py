"""On-call in the browser (issue 18, item 3): in headless Chromium, an on-call person
confirms a suspected incident an alert opened, works through the runbook (instructions
shown, a step marked done with a note and an evidence upload) and approves the notice,
which someone else set; a compliance reader sees the same pages with no forms, and a form
posted by a role that may not is refused. Screenshots at desktop and phone width are
written under the test's temporary directory."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, sync_playwright

from breachflow.flows.intake.alerts import Alert, receive
from breachflow.models import commands, runtime
from breachflow.models.apikey import Role, create_key
from breachflow.models.incident import Severity
from breachflow.models.notice import parse_notice_texts
from tests.api.test_callbacks import AppServer
from tests.api.test_pages import CHROMIUM, _events
from tests.conftest import SQLITE_ONLY, free_port
from tests.testkit.factories import EXAMPLE_NOTICE

EVIDENCE = b"firewall rule 4711 added 09:14, CRM export account disabled\n"


def _shot(page: Page, folder: Path, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=folder / f"{name}-{width}.png", full_page=True)


def _log_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("input[name=key]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/ui/")


@SQLITE_ONLY
def test_on_call_triages_works_the_runbook_and_approves_in_chromium(
    db, settings, monkeypatch, tmp_path, prefect_api
):
    monkeypatch.setenv("BREACH_APPROVAL_GATES", '["notify", "close"]')
    runtime.reset()
    intake = receive(
        "alertmanager:prod",
        Alert(title="Bulk export of the CRM database", severity=Severity.HIGH, fingerprint="f1"),
    )
    key = intake.incident
    assert key and intake.action == "suspected"
    with db.unit_of_work() as session:
        olivia = create_key(session, "olivia", Role.ONCALL, "test")
        carol = create_key(session, "carol", Role.COMPLIANCE, "test")
    evidence = tmp_path / "firewall change.txt"
    evidence.write_bytes(EVIDENCE)

    with AppServer(free_port()) as server, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _log_in(page, server.url, olivia)

        # Triage: confirm the suspected incident, with the reason.
        page.click("nav >> text=Triage")
        card = page.locator(f"section#{key}")
        assert "Bulk export of the CRM database" in card.inner_text()
        assert "1 alert from alertmanager:prod" in card.inner_text()
        _shot(page, tmp_path, "triage")
        card.locator("form:has(input[value=confirm]) textarea").fill("DBA confirms the export")
        card.locator("button:has-text('Confirm')").click()
        page.wait_for_url(f"{server.url}/ui/incidents/{key}")
        assert page.locator("h1").inner_text().startswith(key)

        # The runbook: instructions rendered, a step done with a note and its evidence.
        page.click("text=Work the runbook")
        page.wait_for_url(f"{server.url}/ui/incidents/{key}/runbook")
        step = page.locator("article#containment-stop-access")
        assert "<" not in step.locator(".instructions").inner_text()  # Markdown, rendered
        step.locator("textarea[name=note]").fill("CRM export account disabled")
        step.locator("input[type=file]").set_input_files(evidence)
        step.locator("button:has-text('Mark done')").click()
        page.wait_for_url(f"{server.url}/ui/incidents/{key}/runbook#containment-stop-access")
        done = page.locator("article#containment-stop-access").inner_text()
        assert (
            "done" in done and "by api-key:olivia" in done and "CRM export account disabled" in done
        )

        # Someone else sets the notice texts; olivia gives the approval.
        with db.unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            texts = parse_notice_texts(yaml.safe_load(EXAMPLE_NOTICE.read_text("utf-8")))
            commands.set_notice(session, incident, texts, "api-key:rob")
        page.reload()
        gate = page.locator("article#notification-approve-notice")
        assert "gate: notice approval" in gate.inner_text()
        _shot(page, tmp_path, "runbook")
        gate.locator("textarea[name=note]").fill("v1 checked against the facts")
        gate.locator("button:has-text('Approve as olivia')").click()
        page.wait_for_url(f"{server.url}/ui/incidents/{key}/runbook#notification-approve-notice")
        approved = page.locator("article#notification-approve-notice").inner_text()
        assert "by api-key:olivia" in approved and "v1 checked against the facts" in approved
        _shot(page, tmp_path, "approved")

        # A compliance reader sees the same page; the one form is the closure sign-off,
        # which is theirs to give (and not due yet).
        other = browser.new_page()
        _log_in(other, server.url, carol)
        other.goto(f"{server.url}/ui/incidents/{key}/runbook")
        actions = other.locator("form.act").evaluate_all("forms => forms.map(f => f.action)")
        assert actions == [f"{server.url}/ui/incidents/{key}/approvals/closure"]
        other.goto(f"{server.url}/ui/triage")
        assert "Nothing to triage" in other.inner_text("main")
        # Carol's session posting the form anyway, with her own token: refused by role.
        forged = other.request.post(
            f"{server.url}/ui/incidents/{key}/runbook/containment-preserve-evidence/evidence",
            multipart={"csrf": _csrf(other, server.url, key), "note": "not mine to do"},
            headers={"Origin": server.url},
        )
        assert forged.status == 403 and "compliance key may not take runbook steps" in forged.text()
        browser.close()
        _wait_for_the_run(key)

    events = _events(key)
    triaged = next(e for e in events if e.kind == "incident.triaged")
    assert (triaged.actor, triaged.payload["reason"]) == (
        "api-key:olivia",
        "DBA confirms the export",
    )
    marked = next(e for e in events if e.kind == "runbook.step_done")
    assert marked.actor == "api-key:olivia"
    assert marked.payload["evidence_sha256"] == hashlib.sha256(EVIDENCE).hexdigest()
    given = next(e for e in events if e.kind == "approval.given")
    assert given.actor != "api-key:rob"  # four eyes: the notice's author did not approve
    assert (
        given.actor == "api-key:olivia" and given.payload["step"] == "notification-approve-notice"
    )
    assert not [e for e in events if e.actor == "api-key:carol" and e.kind.startswith("runbook")]
    for name in ("triage", "runbook", "approved"):
        assert (tmp_path / f"{name}-390.png").stat().st_size > 10_000


def _csrf(page: Page, url: str, key: str) -> str:
    """The session's form token, as the incident page's forms (the exports) carry it."""
    page.goto(f"{url}/ui/incidents/{key}")
    return page.locator("input[name=csrf]").first.get_attribute("value") or ""


def _wait_for_the_run(key: str, seconds: float = 120) -> None:
    """The approval started the response in a thread: let it finish before the database
    goes (it has no people to notify, so it stops quickly)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        kinds = {e.kind for e in _events(key)}
        if kinds & {"run.finished", "run.failed"}:
            return
        time.sleep(0.5)
    pytest.fail(f"the response of {key} did not finish in {seconds} s")
