"""Single sign-on for people (issue 18, item 4), against a real OpenID Connect provider run
locally (``oidc-provider-mock``, with client registration required): in Chromium a person
logs in through the provider, gets the role its group maps to, acts under ``sso:NAME``;
someone the provider gives no role is refused, and revoking the person ends the session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright
from sqlalchemy import select

from breachflow.api.pages.sso import role_of
from breachflow.models import runtime
from breachflow.models.apikey import ApiKey, Role, revoke_key
from breachflow.models.settings import Settings
from tests.api.test_callbacks import AppServer
from tests.api.test_pages import CHROMIUM
from tests.conftest import SQLITE_ONLY, free_port

PROVIDER = str(Path(sys.executable).parent / "oidc-provider-mock")


@pytest.fixture
def provider() -> Iterator[str]:
    """The provider on a port of its own, requiring registered clients."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [PROVIDER, "--port", str(port), "--require-registration", "true"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/.well-known/openid-configuration").is_success:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "provider down"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _sign_in(page: Page, app: str, subject: str) -> None:
    page.goto(f"{app}/ui/")
    page.click("#sso")
    page.fill("input[name=sub]", subject)  # the provider's own login form
    page.click("button:has-text('Authorize')")


@SQLITE_ONLY
def test_people_log_in_through_the_provider_with_the_role_their_group_maps_to(
    db, settings, monkeypatch, provider, tmp_path
):
    app_port = free_port()
    app = f"http://127.0.0.1:{app_port}"
    client = httpx.post(
        f"{provider}/oauth2/clients",
        json={"redirect_uris": [f"{app}/ui/login/sso/callback"]},
    ).json()
    users = {
        "alice": {"preferred_username": "alice", "groups": ["staff", "sec-oncall"]},
        "mallory": {"preferred_username": "mallory", "groups": ["marketing"]},
    }
    for subject, claims in users.items():
        assert httpx.put(f"{provider}/users/{subject}", json=claims).status_code == 204
    monkeypatch.setenv("BREACH_PUBLIC_URL", app)
    monkeypatch.setenv("BREACH_OIDC_ISSUER", provider)
    monkeypatch.setenv("BREACH_OIDC_CLIENT_ID", client["client_id"])
    monkeypatch.setenv("BREACH_OIDC_CLIENT_SECRET", client["client_secret"])
    monkeypatch.setenv("BREACH_OIDC_ROLE_MAP", '{"sec-oncall": "oncall"}')
    runtime.reset()
    from breachflow.api.pages.sso import provider as configured

    configured.cache_clear()
    try:
        with AppServer(app_port) as server, sync_playwright() as driver:
            assert server.url == app
            browser = driver.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page()
            _sign_in(page, app, "alice")
            page.wait_for_url(f"{app}/ui/")
            assert "sso:alice · oncall" in page.inner_text("header")
            page.screenshot(path=tmp_path / "signed-in.png")

            refused = browser.new_page()
            _sign_in(refused, app, "mallory")
            refused.wait_for_url(f"{app}/ui/login/sso/callback*")
            assert "gives you no Breachflow role" in refused.inner_text("main")

            # An admin revokes the person here: the session ends at once.
            with db.unit_of_work() as session:
                revoke_key(session, "sso:alice", "test:admin")
            page.goto(f"{app}/ui/")
            assert page.url.startswith(f"{app}/ui/login")
            browser.close()
    finally:
        configured.cache_clear()
    with db.unit_of_work() as session:
        people = {
            k.name: (k.role, k.revoked_at is not None) for k in session.scalars(select(ApiKey))
        }
    assert people == {"sso:alice": ("oncall", True)}  # mallory got nothing


def test_the_role_comes_only_from_the_claim_through_the_map():
    config = Settings(oidc_roles_claim="groups", oidc_role_map={"dpo": "compliance"})
    assert role_of({"groups": ["dpo"]}, config) == Role.COMPLIANCE
    assert role_of({"groups": "oncall"}, config) == Role.ONCALL  # a role's own name
    assert role_of({"groups": ["dpo", "admin"]}, config) == Role.ADMIN  # the first by rank
    assert role_of({"groups": ["alert-source", "metrics"]}, config) is None  # not people
    assert role_of({"groups": ["marketing"]}, config) is None
    assert role_of({"roles": ["admin"]}, config) is None  # another claim counts nothing
    assert role_of({}, config) is None
