"""``breach demo``: a generated incident, run end to end in the sandbox.

Always sandboxed, whatever the settings say: the generated addresses are on reserved
example domains and must never reach a real mail server.
"""

from __future__ import annotations

import csv
import os
import random
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from breachflow import shipped
from breachflow.cli.common import print_summary
from breachflow.cli.progress import run_with_progress
from breachflow.flows.announce.decision import operator_decision
from breachflow.flows.approve import runbook
from breachflow.flows.assess import assessment
from breachflow.flows.assess.subjects import import_subjects
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow
from breachflow.models.incident import Severity
from breachflow.models.notice import parse_notice_texts

EXAMPLE_NOTICE = shipped("examples") / "notice.yaml"
EN_FIRST = [
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Morgan",
    "Casey",
    "Jamie",
    "Robin",
    "Avery",
    "Quinn",
]
EN_LAST = [
    "Smith",
    "Jones",
    "Brown",
    "Taylor",
    "Wilson",
    "Evans",
    "Walker",
    "Wright",
    "Green",
    "Hall",
]
ZH_SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"]
ZH_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳"]
US_AREA_CODES = [212, 213, 305, 312, 415, 617, 702, 713]
HEADER = ["subject_id", "name", "email", "phone", "push", "address", "locale", "country", "region"]
#: Who can be reached how, in shares of everyone: every channel gets work, and some people
#: need the fallback (a broken email, a landline that cannot take an SMS) or have none left.
MIX = (
    ("email and mobile", 0.50),
    ("email only", 0.10),
    ("push only", 0.10),
    ("push and email", 0.05),
    ("mobile only", 0.05),
    ("broken email and mobile", 0.06),  # email unusable: falls back to SMS
    ("landline only", 0.06),  # an SMS is refused: falls back to a call
    ("postal address only", 0.03),  # a letter
    ("broken email and address", 0.02),  # falls back to a letter
    ("broken email only", 0.03),  # no channel left: unreachable
)


def _profile(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for profile, share in MIX:
        total += share
        if roll < total:
            return profile
    return MIX[0][0]


def _person(n: int, chinese: bool, rng: random.Random) -> dict[str, str]:
    if chinese:
        return {
            "name": rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN),
            "email": f"user{n}@example.cn",
            "mobile": f"+86 139 {n:08d}",
            "landline": f"+86 20 {8000_0000 + n:08d}",  # Guangzhou fixed line
            "address": f"广东省广州市天河区\n体育西路{n % 200 + 1}号\n510000",
            "locale": "zh-CN",
            "country": "CN",
            "region": "CN-GD",
        }
    area = US_AREA_CODES[n % len(US_AREA_CODES)]
    return {
        "name": f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}",
        "email": f"user{n}@example.com",
        "mobile": f"+1 {area} {200 + n // 10_000} {n % 10_000:04d}",
        "landline": f"+44 20 7946 {n % 1000:04d}",  # a London fixed line (Ofcom drama range)
        "address": f"{n % 900 + 100} Market Street\nSan Francisco, CA 94105\nUnited States",
        "locale": "en-US",
        "country": "US",
        "region": "US-CA",
    }


def generate_people(path: Path, count: int, seed: int) -> None:
    """Write ``count`` people, about 60% en and 40% zh-CN, reachable as ``MIX`` says."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*HEADER, "customer_tier"])
        for n in range(1, count + 1):
            p = _person(n, rng.random() < 0.4, rng)
            profile = _profile(rng)
            email = p["email"] if "email" in profile else ""
            if "broken email" in profile:
                email = email.replace("@", ".")  # the @ lost in some upstream export
            phone = p["mobile"] if "mobile" in profile else ""
            if "landline" in profile:
                phone, p["country"], p["region"] = p["landline"], "", ""
            push = f"demo-fcm-token-{n:08d}-{rng.getrandbits(64):016x}" if "push" in profile else ""
            address = p["address"] if "address" in profile else ""
            contacts = [email, phone, push, address]
            residence = [p["locale"], p["country"], p["region"]]
            writer.writerow(
                [f"U{n:06d}", p["name"], *contacts, *residence, rng.choice(["free", "pro"])]
            )
        # Two rows a real export would also contain: a repeated person and a truncated line.
        writer.writerow(
            ["U000001", "Duplicate Row", "dup@example.com", "", "", "", "en", "US", "", "pro"]
        )
        writer.writerow(["U999999", "Truncated Row"])


def run_demo(
    people: int, seed: int, actor: str, console: Console, policy: Path | None = None
) -> None:
    os.environ["BREACH_NOTIFIER_MODE"] = "sandbox"
    if policy:
        os.environ["BREACH_POLICY_FILE"] = str(policy.resolve())
    runtime.reset()
    config = runtime.settings()
    promise = assessment.policy(config)  # a broken policy file stops the demo before it starts
    console.print(f"Policy: {promise.name}: {promise.citation.text}")
    now = utcnow().replace(microsecond=0)
    csv_path = config.home / "demo" / f"affected-{now:%Y%m%dT%H%M%S}.csv"
    generate_people(csv_path, people, seed)
    console.print(f"Generated {people} affected people in {csv_path}")

    texts = parse_notice_texts(_yaml(EXAMPLE_NOTICE))
    keys = runtime.vault()  # before the transaction: it checks the key in one of its own
    with runtime.database().unit_of_work() as session:
        incident = commands.declare(
            session,
            title="Demo: support-desk credential misuse",
            description="A stolen support credential was used to export customer records.",
            severity=Severity.HIGH,
            detected_at=now - timedelta(days=2),
            aware_at=now - timedelta(days=1),
            data_categories=["name", "email", "phone", "address"],
            actor=actor,
        )
        commands.set_notice(session, incident, texts, actor)
        report = import_subjects(
            session,
            incident,
            csv_path,
            actor=actor,
            vault=keys,
            default_locale=config.default_locale,
            rejects_dir=config.home / "rejects",
        )
        key = incident.key
    console.print(
        f"Declared [bold]{key}[/]; imported {report.new} people, merged {report.merged} "
        f"repeated rows, rejected {report.rejected_count} ({report.reject_file})"
    )
    for line, message in report.warnings:
        if "merged" in message:
            console.print(f"  line {line}: {message}")
    for line, reason in report.rejected:
        console.print(f"  line {line}: {reason}")

    # Some demo people have no usable contact detail at all: a named person judges that
    # telling them one by one is difficult, so the flow publishes an announcement.
    operator_decision(key, actor, DEMO_JUDGEMENT, waive=False)
    with runtime.database().unit_of_work() as session:  # the demo approves its own notice
        incident = commands.get_incident(session, key, lock=True)
        runbook.approve(
            session, incident, "notice", f"{actor} (demo: auto-approved)", "admin", None
        )
    print_summary(run_with_progress(key, actor, console))
    console.print(f"  Announcement:      {config.site.resolve() / 'index.html'}")
    console.print(f"  Regulator packs:   breach reports {key}")
    console.print(f"  Verify the record:  breach audit verify {key}")


DEMO_JUDGEMENT = (
    "demo: people with no usable email, phone, push token or address cannot be told one by"
    " one; a public announcement instead (GB/T 35273-2020 §10.2: 'difficult')"
)


def _yaml(path: Path) -> object:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))
