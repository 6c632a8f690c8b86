"""Build incidents with affected people the way a user would: declare, notice, import."""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from breachflow import shipped
from breachflow.flows.assess.subjects import ImportReport
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow
from breachflow.models.crypto import Vault
from breachflow.models.db import Database
from breachflow.models.delivery import DeliveryResult, OutboundMessage
from breachflow.models.incident import Incident, Severity
from breachflow.models.notice import parse_notice_texts
from breachflow.models.settings import Settings
from breachflow.notifiers.base import Notifier

EXAMPLE_NOTICE = shipped("examples") / "notice.yaml"

#: The section headings every notice must show, per locale and part.
HEADINGS = {
    "en": {
        "text": [
            "WHAT HAPPENED",
            "WHEN IT HAPPENED",
            "WHAT INFORMATION WAS INVOLVED",
            "POSSIBLE IMPACT ON YOU",
            "WHAT WE HAVE DONE AND WILL DO",
            "WHAT YOU CAN DO TO PROTECT YOURSELF",
            "WHAT WE OFFER YOU",
            "HOW TO CONTACT US",
        ],
        "html": [
            "What happened",
            "When it happened",
            "What information was involved",
            "Possible impact on you",
            "What we have done and will do",
            "What you can do to protect yourself",
            "What we offer you",
            "How to contact us",
        ],
    },
    "zh-CN": {
        "text": [
            "【事件基本情况】",
            "【发生时间】",
            "【涉及的个人信息】",
            "【可能的影响】",
            "【已采取或将要采取的处置措施】",
            "【您可自主防范和降低风险的建议】",
            "【针对您的补救措施】",
            "【联系方式】",
        ],
        "html": [
            "事件基本情况",
            "发生时间",
            "涉及的个人信息",
            "可能的影响",
            "已采取或将要采取的处置措施",
            "您可自主防范和降低风险的建议",
            "针对您的补救措施",
            "联系方式",
        ],
    },
}


@dataclass(frozen=True)
class Person:
    subject_id: str
    name: str
    email: str
    locale: str
    country: str


def people(count: int, *, broken_every: int = 0) -> list[Person]:
    """Alternate en / zh-CN people; every ``broken_every``-th has an address without '@'."""
    result = []
    for n in range(1, count + 1):
        chinese = n % 2 == 0
        email = f"person{n}@example.{'cn' if chinese else 'com'}"
        if broken_every and n % broken_every == 0:
            email = email.replace("@", ".at.")
        result.append(
            Person(
                subject_id=f"S{n:05d}",
                name=f"张{n}" if chinese else f"Person {n}",
                email=email,
                locale="zh-CN" if chinese else "en",
                country="CN" if chinese else "GB",
            )
        )
    return result


def write_csv(path: Path, persons: list[Person]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "name", "email", "phone", "locale", "country", "region"])
        for p in persons:
            writer.writerow([p.subject_id, p.name, p.email, "", p.locale, p.country, ""])
    return path


def seed_incident(
    db: Database,
    settings: Settings,
    persons: list[Person],
    *,
    with_notice: bool = True,
    data_categories: tuple[str, ...] = ("email", "name"),
    aware_days_ago: float = 1,
) -> str:
    from breachflow.flows.assess.subjects import import_subjects

    csv_path = write_csv(settings.home.parent / "affected.csv", persons)
    now = utcnow()
    keys = runtime.vault()  # before the transaction: it checks the key in one of its own
    with db.unit_of_work() as session:
        incident = declare_test_incident(
            session, "Test incident", now, data_categories, aware_days_ago
        )
        if with_notice:
            texts = parse_notice_texts(yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8")))
            commands.set_notice(session, incident, texts, "test:seed")
        import_subjects(
            session,
            incident,
            csv_path,
            actor="test:seed",
            vault=keys,
            default_locale="en",
            rejects_dir=settings.home / "rejects",
        )
        return incident.key


def run_import(
    db: Database, keys: Vault, incident_id: int, path: Path, tmp_path: Path, **options: Any
) -> ImportReport:
    """Import ``path`` into the incident as ``alice``, rejects under ``tmp_path``."""
    from breachflow.flows.assess.subjects import import_subjects
    from breachflow.models.incident import Incident

    options = {"encoding": None, "mapping": {}, "workers": 1, **options}
    with db.unit_of_work() as session:
        incident = session.get(Incident, incident_id)
        assert incident is not None
        return import_subjects(
            session,
            incident,
            path,
            actor="alice",
            vault=keys,
            default_locale="en",
            rejects_dir=tmp_path / "rejects",
            **options,
        )


def deliver(notifier: Notifier, batch: list[OutboundMessage]) -> dict[int, DeliveryResult]:
    """Send ``batch`` and map the results by notification id: exactly one per message."""
    results = asyncio.run(notifier.send(batch))
    mapped = {r.notification_id: r for r in results}
    assert len(mapped) == len(results) == len(batch), "not exactly one result per message"
    return mapped


def declare_test_incident(
    session: Session,
    title: str,
    now: datetime,
    data_categories: tuple[str, ...] = ("email", "name"),
    aware_days_ago: float = 1,
) -> Incident:
    """An incident detected a day before we knew of it, known one day before ``now``."""
    return commands.declare(
        session,
        title=title,
        description="Records exported with a stolen credential.",
        severity=Severity.HIGH,
        detected_at=now - timedelta(days=aware_days_ago + 1),
        aware_at=now - timedelta(days=aware_days_ago),
        data_categories=list(data_categories),
        actor="test:seed",
    )
