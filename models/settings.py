"""Configuration from the environment (prefix ``BREACH_``), with embedded defaults.

With nothing set, everything lives under ``.breach/`` in the working directory: the SQLite
database, Prefect's home, the sandbox outbox and the written reports. That makes
``breach demo`` work on a fresh machine while production points each piece elsewhere.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import pyrage
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class NotifierMode(StrEnum):
    """``sandbox`` writes every notice to the outbox; ``live`` sends through providers."""

    SANDBOX = "sandbox"
    LIVE = "live"


class SmtpTls(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"  # implicit TLS, usually port 465


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BREACH_", env_file=".env", toml_file="breach.toml", extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then ``.env``, then ``breach.toml`` in the working directory."""
        toml = TomlConfigSettingsSource(settings_cls)
        return init_settings, env_settings, dotenv_settings, toml, file_secret_settings

    home: Path = Field(Path(".breach"), description="Working directory for embedded mode.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`breach serve`'s log lines (the access log included): plain text, or one"
        " JSON object per line for a log pipeline.",
    )
    library_logs: Literal["file", "console"] = Field(
        "file",
        description="Where libraries' own warnings go: home/logs/libraries.log, or the console.",
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite under home.")

    data_key: SecretStr | None = Field(None, description="Base64 of 32 random bytes.")
    data_key_file: Path | None = Field(None, description="Default: home/data.key.")
    checkpoint_key_file: Path | None = Field(
        None,
        description="Ed25519 private key (PEM) that signs timeline checkpoints (`breach audit"
        " keygen`); keep it off the database server. Embedded default: home/checkpoint.key,"
        " created on first use. Unset with an external database: no checkpoints.",
    )
    witness_dir: Path | None = Field(
        None,
        description="Folder where signed checkpoints are appended, one JSON Lines file per"
        " incident: outside the database (another machine's mount, a write-once volume)."
        " Embedded default: home/witness.",
    )
    retention_days: int = Field(
        90, ge=0, description="Days after closure before contact details are purged."
    )

    notifier_mode: NotifierMode = NotifierMode.SANDBOX
    outbox_dir: Path | None = None
    reports_dir: Path | None = None

    smtp_url: str | None = Field(
        None,
        description="smtp://user:pass@host:port, smtps:// for implicit TLS, "
        "smtp+starttls:// for STARTTLS. Overrides the smtp_* fields.",
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: SmtpTls = SmtpTls.NONE
    smtp_timeout: float = 30.0
    smtp_pool_size: int = Field(
        4,
        ge=1,
        le=64,
        description="SMTP connections a batch is sent over (a dispatcher sends one batch at a"
        " time), granted within BREACH_SMTP_MAX_CONNECTIONS.",
    )
    smtp_max_connections: int = Field(
        30, ge=1, description="Connections open at once across all dispatchers."
    )

    sender: str = "security-notice@example.com"
    reply_to: str | None = Field(
        None,
        description="Reply-To of email notices (default: BREACH_CONTACT_POINT when it is one"
        " email address): a notice invites a reply, and the sender is rarely read.",
    )
    organisation_name: str = "Example Operator Ltd."
    contact_point: str = "privacy@example.com"
    default_locale: str = "en"

    # The organisation profile the rules test (rules/groups.yaml lists the sector flags).
    organisation_sectors: list[str] = Field(default_factory=list)
    home_jurisdictions: list[str] = Field(default_factory=list)
    organisation_timezone: str = "UTC"
    gdpr_lead_authority_timezone: str = "Europe/Brussels"
    policy_file: Path | None = Field(
        None, description="Our published promise; see examples/policies/."
    )
    rules_overrides: Path | None = Field(None, description="Rule files replacing shipped ones.")

    policy_notice_days: int = Field(30, ge=1, description="Our published outer limit.")
    import_workers: int = Field(2, ge=1, le=32, description="Processes validating imports.")
    batch_size: int = Field(500, ge=1, le=5000)
    # Temporary failures are retried like a mail server's queue: with backoff, until the
    # retry lifetime has passed or the notice deadline is a margin away (models/ledger.py).
    max_attempts: int | None = Field(
        None, ge=1, description="Cap on tries of a temporary failure; default none: the lifetime."
    )
    retry_base_seconds: float = Field(10.0, ge=0)
    retry_max_seconds: float = Field(600.0, ge=0)
    retry_lifetime_hours: float = Field(
        24.0, gt=0, description="How long a temporary failure is retried on one channel."
    )
    deadline_margin_hours: float = Field(
        72.0, ge=0, description="Retrying stops this long before the notice deadline."
    )
    letter_pieces_per_day: int = Field(
        250_000, ge=0, description="What the mailing vendor prints and posts a day (0: no limit)."
    )
    # Above this volume letters go to the mailing vendor as one encrypted merge hand-over per
    # batch instead of a PDF each (notifiers/letter_vendor.py).
    letter_vendor_threshold: int = Field(
        5000, ge=0, description="Letters of an incident from which the vendor merges (0: always)."
    )
    letter_vendor_recipient: str | None = Field(
        None, description="The mailing vendor's age public key (age1...): hand-overs are for it."
    )
    outage_retries: int = Field(
        5, ge=1, description="Backoffs a shard gives a provider it cannot use at all."
    )
    lease_seconds: float = Field(300.0, gt=0)
    # With a Prefect server the notify stage fans out to workers (flows/notify/fanout.py).
    notify_shards: int = Field(
        2, ge=1, le=256, description="Shard runs the notify stage submits to the work pool."
    )
    work_pool: str = Field(
        "breachflow", min_length=1, description="Prefect work pool `breach worker` polls."
    )

    public_url: str = Field(
        "http://localhost:8000",
        description="Where `breach serve` is reachable: notice links and status callbacks.",
    )
    oidc_issuer: str | None = Field(
        None,
        description="Single sign-on for the pages: the OpenID Connect provider's issuer URL"
        " (its /.well-known/openid-configuration is read). Unset: log in with an API key.",
    )
    oidc_client_id: str | None = Field(None, description="This app's client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(
        None, description="This app's client secret at the provider."
    )
    oidc_roles_claim: str = Field(
        "groups",
        description="The ID token claim (a string or a list) whose values give a person's role.",
    )
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict,
        description='Claim values to roles, e.g. {"sec-oncall": "oncall", "dpo": "compliance"};'
        " a value that is itself a role's name (admin, responder, oncall, compliance) counts"
        " as that role. Several: the first of admin, responder, oncall, compliance.",
    )
    oidc_name_claim: str = Field(
        "preferred_username",
        description="The claim that names the person on the timeline (sso:NAME); the subject"
        " (sub) when it is missing.",
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Proxies in front of `breach serve` (addresses or networks, e.g."
        ' ["10.0.0.0/8"]) whose Forwarded / X-Forwarded-For name the client; from anyone'
        " else those headers are ignored.",
    )
    alert_incidents_per_hour: int = Field(
        20,
        ge=1,
        description="Incidents one alert source may open in an hour; its further new alerts"
        " are grouped on one 'alert storm' incident for triage.",
    )
    public_reports_per_hour: int = Field(
        100,
        ge=1,
        description="Reports from the public taken in an hour from all addresses together"
        " (each address: 5); each one sends an acknowledgement email.",
    )
    allow_local_public_url: bool = Field(
        False,
        description="Live SMS, calls and push with a public_url that is not public https"
        " (a staging network whose phones and providers reach it). Off: those channels are"
        " not used, rather than send people links their phones cannot open.",
    )
    # Rates are held across every dispatcher process by the database (see models/pacing.py).
    email_rate_per_second: float = Field(0, ge=0, description="0 means no limit.")
    sms_rate_per_second: float = Field(100, ge=0)
    voice_rate_per_second: float = Field(1, ge=0)
    push_rate_per_second: float = Field(500, ge=0)

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    twilio_base_url: str | None = Field(None, description="Only to point at a test server.")
    sms_segment_budget: int = Field(3, ge=1, le=10)
    voice_max_attempts: int = Field(3, ge=1, description="Calls busy or not answered.")
    report_wait_seconds: float = Field(
        300, ge=0, description="How long notify waits for SMS and call outcomes (callbacks)."
    )

    fcm_service_account_file: Path | None = None
    fcm_base_url: str = "https://fcm.googleapis.com"
    vapid_private_key_file: Path | None = None
    vapid_subject: str = "mailto:security-notice@example.com"

    letter_dropbox: Path | None = Field(
        None, description="Folder the mailing vendor collects letter batches from."
    )

    # Public announcement (flows/announce/) and where it is published.
    site_dir: Path | None = Field(None, description="Static site folder; default home/site.")
    site_url: str | None = Field(
        None, description="Where site_dir is served; default public_url/site/."
    )
    announcement_webhook_url: str | None = None
    announcement_webhook_secret: SecretStr | None = None
    media_emails: list[str] = Field(default_factory=list, description="Press statement list.")
    announcement_days: int = Field(
        90, ge=1, description="How long an announcement stays up when no rule sets a minimum."
    )
    announcement_at_risk_hours: float = Field(
        72, ge=0, description="People still pending this close to the deadline: announce."
    )
    individual_notice_cost_usd: float | None = Field(
        None, ge=0, description="Estimated cost of notifying everyone one by one."
    )
    # Regulator reports (flows/report/filing.py): regimes with an address get the report by
    # email with its PDF; the others get a pack to file on the regulator's portal.
    regulator_emails: dict[str, str] = Field(
        default_factory=dict,
        description="Regulators that take reports by email: regime (or regime:PLACE for one"
        ' member state\'s authority, e.g. "eu-gdpr:FR") -> address. Others are filed by a'
        " person on the regulator's portal.",
    )

    alert_rules_file: Path | None = Field(
        None, description="Which alerts declare an incident; see examples/alert-rules.yaml."
    )

    approval_gates: list[str] = Field(
        default_factory=lambda: ["notify", "close"],
        description="Flow steps that wait for a person's approval: notify (the notice), close"
        " (the closure sign-off); [] turns gates off.",
    )
    four_eyes: bool = Field(
        default=True,
        description="The person who last set the notice texts may not approve them: someone"
        " else with the gate's role does (false: a team of one may approve its own texts).",
    )

    serve_threads: int = Field(
        default=8,
        ge=1,
        le=200,
        description="Worker threads `breach serve` gives database work (bench/intake.py).",
    )
    prefect_deployments: bool | None = Field(
        default=None,
        description=(
            "Start unattended runs as Prefect deployment runs served by `breach serve`"
            " (default: when PREFECT_API_URL names a Prefect server)."
        ),
    )

    # The deadline watchdog (flows/watchdog.py): when to warn, and whom.
    watchdog_levels: list[float] = Field(
        default_factory=lambda: [0.5, 0.75, 0.9],
        description="Fractions of a deadline's window at which on-call is warned.",
    )
    oncall_emails: list[str] = Field(default_factory=list)
    oncall_phones: list[str] = Field(default_factory=list, description="E.164, for SMS.")
    pagerduty_routing_key: SecretStr | None = Field(
        None,
        description="A PagerDuty service's Events API v2 integration key: each deadline in"
        " danger pages (one alert per deadline), resolved when it is met.",
    )
    pagerduty_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue", description="PagerDuty's Events API v2."
    )
    opsgenie_api_key: SecretStr | None = Field(
        None,
        description="An Opsgenie API integration's key: each deadline in danger is an alert"
        " (aliased by deadline), closed when it is met.",
    )
    opsgenie_url: str = Field(
        "https://api.opsgenie.com", description="Opsgenie's API (api.eu.opsgenie.com in the EU)."
    )
    teams_webhook_url: SecretStr | None = Field(
        None,
        description="A Microsoft Teams incoming webhook (Workflows): the same lines as Slack,"
        " as Adaptive Cards.",
    )
    webhook_url: str | None = Field(
        None,
        description="A generic outbound webhook: each stage and warning as a CloudEvent 1.0,"
        " HMAC-signed with BREACH_WEBHOOK_SECRET.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="The HMAC-SHA256 secret that signs the outbound webhook's events."
    )
    slack_webhook_url: SecretStr | None = Field(
        None,
        description="A Slack incoming webhook (a secret): a message in the incident channel per"
        " stage (declared, approved, notifying, notified, closed) and per deadline warning.",
    )

    @field_validator("letter_vendor_recipient")
    @classmethod
    def _age_recipient(cls, value: str | None) -> str | None:
        """Refuse a key the hand-over could not be encrypted to, before any letter is due."""
        if value is None:
            return None
        try:
            pyrage.x25519.Recipient.from_str(value.strip())
        except pyrage.RecipientError:
            raise ValueError("must be an age public key (age1...), the vendor's") from None
        return value.strip()

    @field_validator("reply_to")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value:
            try:
                validate_email(value, check_deliverability=False)
            except EmailNotValidError as exc:
                raise ValueError(f"not an email address: {exc}") from None
        return value

    @model_validator(mode="after")
    def _signed_webhook(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("BREACH_WEBHOOK_URL needs BREACH_WEBHOOK_SECRET: events go out signed")
        return self

    @model_validator(mode="after")
    def _apply_smtp_url(self) -> Settings:
        if not self.smtp_url:
            return self
        parts = urlsplit(self.smtp_url)
        schemes = {"smtp": SmtpTls.NONE, "smtp+starttls": SmtpTls.STARTTLS, "smtps": SmtpTls.TLS}
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(
                "BREACH_SMTP_URL must look like smtp://host:25, smtp+starttls://user:pass@host:587"
                " or smtps://user:pass@host:465"
            )
        self.smtp_tls = schemes[parts.scheme]
        self.smtp_host = parts.hostname
        self.smtp_port = parts.port or {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        if parts.username:
            self.smtp_user = unquote(parts.username)
        if parts.password:
            self.smtp_password = SecretStr(unquote(parts.password))
        return self

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'breach.db').resolve()}"

    @property
    def public_url_problem(self) -> str | None:
        """Why ``public_url`` cannot be put in people's notices or given to providers for
        their reports (not https, or a loopback or private address), or None."""
        if self.allow_local_public_url:
            return None
        parts = urlsplit(self.public_url)
        host = (parts.hostname or "").lower()
        try:
            address = ipaddress.ip_address(host)
            local = address.is_loopback or address.is_private or address.is_link_local
        except ValueError:
            local = host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
        if parts.scheme != "https" or not host or local:
            return (
                f"BREACH_PUBLIC_URL ({self.public_url}) is not a public https address: set it"
                " to where `breach serve` is reachable from the internet"
            )
        return None

    @property
    def reply_address(self) -> str | None:
        """Where replies to notices go: ``reply_to``, else the contact point when it is an
        email address, else nowhere (no Reply-To: replies go to the sender)."""
        if self.reply_to:
            return self.reply_to
        point = self.contact_point.strip()
        try:
            validate_email(point, check_deliverability=False)
        except EmailNotValidError:
            return None
        return point

    @property
    def embedded(self) -> bool:
        """True when everything lives under ``home`` (no external database configured)."""
        return self.database_url is None

    @property
    def key_file(self) -> Path:
        return self.data_key_file or self.home / "data.key"

    @property
    def checkpoint_key(self) -> Path | None:
        """The signing key's file, or None: anchoring is off (external database, unset)."""
        if self.checkpoint_key_file or not self.embedded:
            return self.checkpoint_key_file
        return self.home / "checkpoint.key"

    @property
    def witness(self) -> Path:
        return self.witness_dir or self.home / "witness"

    @property
    def outbox(self) -> Path:
        return self.outbox_dir or self.home / "outbox"

    @property
    def reports(self) -> Path:
        return self.reports_dir or self.home / "reports"

    def outside_world(self, exercise: bool, key: str) -> Settings:
        """The settings for what an incident sends people, the public and regulators: these,
        or for an exercise the sandbox, with an outbox and a site of its own under
        home/exercises/KEY, so nothing of it reaches anyone outside (its report packs are
        written where every incident's are, and never submitted)."""
        if not exercise:
            return self
        folder = self.home / "exercises" / key
        return self.model_copy(
            update={
                "notifier_mode": NotifierMode.SANDBOX,
                "outbox_dir": folder / "outbox",
                "site_dir": folder / "site",
            }
        )

    @property
    def site(self) -> Path:
        return self.site_dir or self.home / "site"

    @property
    def site_base_url(self) -> str:
        return self.site_url or self.public_url.rstrip("/") + "/site/"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"
