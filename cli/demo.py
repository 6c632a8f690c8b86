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

from cli.common import print_summary
from cli.progress import run_with_progress
from flows import assessment, runtime
from flows.subjects import import_subjects
from models import commands
from models.base import utcnow
from models.incident import Severity
from models.notice import parse_notice_texts

EXAMPLE_NOTICE = Path(__file__).resolve().parents[1] / "examples" / "notice.yaml"
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
HEADER = ["subject_id", "name", "email", "phone", "locale", "country", "region"]


def generate_people(path: Path, count: int, seed: int) -> None:
    """Write ``count`` people: about 60% en (US/GB), 40% zh-CN; 2% with a broken email."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*HEADER, "customer_tier"])
        for n in range(1, count + 1):
            chinese = rng.random() < 0.4
            if chinese:
                name = rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN)
                phone = f"+86 139 {n:08d}"
                row = [f"U{n:06d}", name, f"user{n}@example.cn", phone, "zh-CN", "CN", "CN-44"]
            else:
                name = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
                area = US_AREA_CODES[n % len(US_AREA_CODES)]
                phone = f"+1 {area} {200 + n // 10_000} {n % 10_000:04d}"
                row = [f"U{n:06d}", name, f"user{n}@example.com", phone, "en-US", "US", "US-CA"]
            if rng.random() < 0.02:
                row[2] = f"user{n}.example.com"  # the @ lost in some upstream export
            writer.writerow([*row, rng.choice(["free", "pro"])])
        # Two rows a real export would also contain: a repeated person and a truncated line.
        writer.writerow(
            [*[f"U{1:06d}", "Duplicate Row", "dup@example.com", "", "en", "US", ""], "pro"]
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
            data_categories=["name", "email", "phone"],
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

    print_summary(run_with_progress(key, actor, console))
    console.print(f"  Verify the record:  breach audit verify {key}")


def _yaml(path: Path) -> object:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))
