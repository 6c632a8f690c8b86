"""No cost that grows with the square of the population: 10,000 people against 100,000.

Each step (import, queue, resume, claim) is run on an incident of 10,000 people and one of
100,000 in the same PostgreSQL database, and its cost per person is counted as the rows
PostgreSQL read for it and the pages it visited (``tests/testkit/pgstats.py``; wall time is
too noisy in CI). The test fails if either doubles from 10k to 100k: a lookup whose generic
plan scans the table, a claim that walks the sent rows, a resume by ``NOT IN``, a queue
that walks the ledger it is filling once per person would all grow tenfold.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from breachflow.flows.assess.subjects import import_subjects
from breachflow.models import ledger, runtime
from breachflow.models.base import utcnow
from breachflow.models.delivery import Channel
from breachflow.models.incident import Incident
from breachflow.models.notification import Notification
from tests.testkit.factories import declare_test_incident, people, write_csv
from tests.testkit.pgstats import reads

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

SMALL, LARGE = 10_000, 100_000
BATCH = 500


def _incident(db, title: str) -> int:  # type: ignore[no-untyped-def]
    with db.unit_of_work() as session:
        return declare_test_incident(session, title, utcnow(), ("email", "name"), 1).id


def test_cost_per_person_stays_flat_from_10k_to_100k(db, settings, database_url, tmp_path):
    keys = runtime.vault()
    steps = ("import", "queue", "resume")
    rows: dict[str, dict[int, float]] = {step: {} for step in steps}
    pages: dict[str, dict[int, float]] = {step: {} for step in steps}
    incidents: dict[int, int] = {}
    for size in (SMALL, LARGE):
        path = write_csv(tmp_path / f"people-{size}.csv", people(size))
        incidents[size] = incident_id = _incident(db, f"{size} people")
        with db.unit_of_work() as session, reads(session, database_url) as counted:
            incident = session.get(Incident, incident_id)
            report = import_subjects(
                session, incident, path, actor="test", vault=keys, default_locale="en",
                rejects_dir=tmp_path / "rejects", workers=2,
            )  # fmt: skip
        assert report.new == size
        rows["import"][size], pages["import"][size] = counted.rows / size, counted.pages / size
        # Each size is queued into an empty ledger, as on a new deployment: the planner then
        # believes the ledger empty, where a plan that reads it per person is cheapest.
        with db.engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE notifications CASCADE")
            conn.exec_driver_sql("ANALYZE notifications")
        for step in ("queue", "resume"):  # the second is a resumed run: nobody is new
            with db.unit_of_work() as session, reads(session, database_url) as counted:
                incident = session.get(Incident, incident_id)
                queued = ledger.queue(session, incident, [Channel.EMAIL], 1)
            assert sum(queued.values()) == (size if step == "queue" else 0)
            rows[step][size], pages[step][size] = counted.rows / size, counted.pages / size

    for step in steps:
        assert rows[step][LARGE] <= 2 * max(rows[step][SMALL], 1), (step, rows[step])
        assert pages[step][LARGE] <= 2 * max(pages[step][SMALL], 1), (step, pages[step])

    # The claim of one batch, with nothing sent yet and with 99% sent.
    incident_id = incidents[LARGE]
    claims = {}
    for sent_share in (0.0, 0.99):
        with db.engine.begin() as conn:
            conn.execute(
                sa.update(Notification)
                .where(
                    Notification.incident_id == incident_id,
                    Notification.id
                    <= sa.select(sa.func.min(Notification.id))
                    .where(Notification.incident_id == incident_id)
                    .scalar_subquery()
                    + int(LARGE * sent_share)
                    - 1,
                )
                .values(state="sent")
            )
            conn.exec_driver_sql("ANALYZE notifications")
        with db.unit_of_work() as session, reads(session, database_url) as counted:
            incident = session.get(Incident, incident_id)
            leased = ledger.claim(session, incident, Channel.EMAIL, "test", BATCH, 60)
            assert len(leased) == BATCH
        claims[sent_share] = counted.rows
    assert claims[0.99] <= 1.5 * claims[0.0], claims
