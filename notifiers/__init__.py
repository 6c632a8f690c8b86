"""Channel adapters behind one protocol, chosen by configuration (sandbox or live)."""

from __future__ import annotations

from models.settings import NotifierMode, Settings
from notifiers.base import Notifier
from notifiers.sandbox import OutboxEmailNotifier
from notifiers.smtp import SmtpEmailNotifier


def email_notifier(settings: Settings) -> Notifier:
    """The email notifier the settings ask for: the outbox in sandbox mode, SMTP when live."""
    if settings.notifier_mode is NotifierMode.SANDBOX:
        return OutboxEmailNotifier(settings.outbox, settings.sender, settings.organisation_name)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpEmailNotifier(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.sender,
        organisation=settings.organisation_name,
        username=settings.smtp_user,
        password=password,
        tls=settings.smtp_tls,
        timeout=settings.smtp_timeout,
        pool_size=settings.smtp_pool_size,
    )


__all__ = ["Notifier", "email_notifier"]
