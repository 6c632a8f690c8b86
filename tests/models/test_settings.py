"""Settings from BREACH_* variables: the SMTP URL forms and where the defaults put things."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from breachflow.models.delivery import Channel
from breachflow.models.settings import NotifierMode, Settings, SmtpTls
from breachflow.notifiers.factory import email_notifier, unconfigured_reason
from breachflow.notifiers.sandbox import OutboxEmailNotifier
from breachflow.notifiers.smtp import SmtpEmailNotifier


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No BREACH_* variables and an empty working directory (so no stray .env is read)."""
    for name in list(os.environ):
        if name.startswith("BREACH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def smtp_of(settings: Settings) -> tuple[str, int, SmtpTls, str | None, str | None]:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return (
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_tls,
        settings.smtp_user,
        password,
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, SmtpTls.NONE, None, None)),
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, SmtpTls.NONE, None, None)),
        (
            "smtp+starttls://user:p%40ss@host:587",
            ("host", 587, SmtpTls.STARTTLS, "user", "p@ss"),
        ),
        (
            "smtp+starttls://ops%40example.com:a%2Fb%3Ac@smtp.example.com",
            ("smtp.example.com", 587, SmtpTls.STARTTLS, "ops@example.com", "a/b:c"),
        ),
        (
            "smtps://user:secret@smtp.example.com:465",
            ("smtp.example.com", 465, SmtpTls.TLS, "user", "secret"),
        ),
        ("smtps://smtp.example.com", ("smtp.example.com", 465, SmtpTls.TLS, None, None)),
    ],
)
def test_smtp_url_forms(env: pytest.MonkeyPatch, url: str, expected: tuple[object, ...]) -> None:
    """Each documented BREACH_SMTP_URL form sets host, port, TLS, user and unquoted password."""
    env.setenv("BREACH_SMTP_URL", url)
    assert smtp_of(Settings()) == expected


def test_smtp_url_overrides_the_field_by_field_settings(env: pytest.MonkeyPatch) -> None:
    """BREACH_SMTP_URL wins over BREACH_SMTP_HOST/_PORT/_TLS, as documented."""
    env.setenv("BREACH_SMTP_HOST", "other.example.com")
    env.setenv("BREACH_SMTP_PORT", "2500")
    env.setenv("BREACH_SMTP_TLS", "none")
    env.setenv("BREACH_SMTP_URL", "smtps://relay.example.com:10465")
    assert smtp_of(Settings())[:3] == ("relay.example.com", 10465, SmtpTls.TLS)


def test_field_by_field_smtp_settings(env: pytest.MonkeyPatch) -> None:
    """Without a URL, the separate BREACH_SMTP_* variables are used."""
    env.setenv("BREACH_SMTP_HOST", "relay.example.com")
    env.setenv("BREACH_SMTP_PORT", "587")
    env.setenv("BREACH_SMTP_TLS", "starttls")
    env.setenv("BREACH_SMTP_USER", "ops")
    env.setenv("BREACH_SMTP_PASSWORD", "pw")
    assert smtp_of(Settings()) == ("relay.example.com", 587, SmtpTls.STARTTLS, "ops", "pw")


@pytest.mark.parametrize(
    "url", ["http://mail.example.com", "smtp+ssl://host:465", "mail.example.com:25", "smtp://"]
)
def test_a_bad_smtp_url_is_refused_clearly(env: pytest.MonkeyPatch, url: str) -> None:
    """An unknown scheme or a missing host is refused with the forms that would work."""
    env.setenv("BREACH_SMTP_URL", url)
    with pytest.raises(ValidationError, match="BREACH_SMTP_URL must look like smtp://host:25"):
        Settings()


def test_the_password_stays_secret(env: pytest.MonkeyPatch) -> None:
    """The SMTP password is not shown when the settings are printed."""
    env.setenv("BREACH_SMTP_URL", "smtp+starttls://user:hunter2@host:587")
    settings = Settings()
    assert "hunter2" not in repr(settings.smtp_password)
    assert "hunter2" not in str(settings.smtp_password)


def test_defaults_put_everything_under_breach_home(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With BREACH_HOME set, the SQLite database, outbox and reports live under it."""
    home = tmp_path / "elsewhere" / "breach-home"
    env.setenv("BREACH_HOME", str(home))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{(home / 'breach.db').resolve()}"
    assert settings.outbox == home / "outbox"
    assert settings.reports == home / "reports"
    assert settings.prefect_home == home / "prefect"


def test_with_nothing_set_home_is_dot_breach_in_the_working_directory(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fresh machine: the database is an absolute path to ./.breach/breach.db, sandbox mode."""
    settings = Settings()
    assert (
        settings.resolved_database_url
        == f"sqlite:///{(tmp_path / '.breach' / 'breach.db').resolve()}"
    )
    assert settings.notifier_mode is NotifierMode.SANDBOX
    assert smtp_of(settings) == ("127.0.0.1", 25, SmtpTls.NONE, None, None)


def test_an_explicit_database_url_wins(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """BREACH_DATABASE_URL is used as given instead of the SQLite file under home."""
    url = "postgresql+psycopg://breach@db.example.com/breach"
    env.setenv("BREACH_HOME", str(tmp_path / "home"))
    env.setenv("BREACH_DATABASE_URL", url)
    assert Settings().resolved_database_url == url


def test_env_file_in_the_working_directory_is_read(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A .env file next to where breach runs configures it, as the README says."""
    (tmp_path / ".env").write_text("BREACH_SMTP_URL=smtps://relay.example.com\n", encoding="utf-8")
    assert smtp_of(Settings())[:3] == ("relay.example.com", 465, SmtpTls.TLS)


def test_the_notifier_follows_the_mode(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Sandbox mode writes to the outbox under home; live mode sends by SMTP."""
    env.setenv("BREACH_HOME", str(tmp_path / "home"))
    sandbox = email_notifier(Settings())
    assert isinstance(sandbox, OutboxEmailNotifier)
    assert sandbox.directory == tmp_path / "home" / "outbox" / "email"
    env.setenv("BREACH_NOTIFIER_MODE", "live")
    env.setenv("BREACH_SMTP_URL", "smtp://127.0.0.1:2525")
    assert isinstance(email_notifier(Settings()), SmtpEmailNotifier)


@pytest.mark.parametrize(
    ("name", "value"), [("BREACH_SMTP_POOL_SIZE", "0"), ("BREACH_BATCH_SIZE", "0")]
)
def test_out_of_range_numbers_are_refused(env: pytest.MonkeyPatch, name: str, value: str) -> None:
    """A pool or batch size of 0 is refused at start-up rather than hanging later."""
    env.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://localhost:8000", False),  # the default: no phone can open it
        ("https://localhost", False),
        ("https://10.0.0.5", False),
        ("https://127.0.0.1:8443", False),
        ("http://breach.example.com", False),  # a link in an SMS must not be plain http
        ("https://breach.example.com", True),
    ],
)
def test_live_texts_calls_and_push_need_a_public_https_url(
    env: pytest.MonkeyPatch, url: str, public: bool
) -> None:
    """SMS and push notices link to BREACH_PUBLIC_URL and Twilio reports to it: in live
    mode those channels are left out, with the reason, until it is public https."""
    env.setenv("BREACH_NOTIFIER_MODE", "live")
    env.setenv("BREACH_PUBLIC_URL", url)
    env.setenv("BREACH_TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    env.setenv("BREACH_TWILIO_AUTH_TOKEN", "token")
    env.setenv("BREACH_TWILIO_FROM_NUMBER", "+15005550006")
    settings = Settings()
    reason = unconfigured_reason(Channel.SMS, settings)
    assert (reason is None) is public
    if not public:
        assert reason and "BREACH_PUBLIC_URL" in reason and url in reason
        assert unconfigured_reason(Channel.VOICE, settings) == reason
        assert unconfigured_reason(Channel.EMAIL, settings) is None  # no link in an email
    env.setenv("BREACH_ALLOW_LOCAL_PUBLIC_URL", "true")  # a staging network, said so
    assert unconfigured_reason(Channel.SMS, Settings()) is None
