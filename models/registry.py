"""Imports every model so that ``Base.metadata`` knows all tables (for Alembic)."""

from breachflow.models.alert import AlertGroup, AlertSource, SeenSignature
from breachflow.models.anchor import StoredCheckpoint
from breachflow.models.announcement import Announcement, AnnouncementDecision
from breachflow.models.apikey import ApiKey
from breachflow.models.assessment import Assessment
from breachflow.models.base import Base
from breachflow.models.incident import Incident
from breachflow.models.meta import Meta
from breachflow.models.notice import NoticeVersion
from breachflow.models.notification import DeliveryReport, Notification
from breachflow.models.pacing import ProviderSlot, RateLimit
from breachflow.models.public_report import PublicReport
from breachflow.models.regulator_report import RegulatorReport
from breachflow.models.runbook import StepDone
from breachflow.models.subject import Subject
from breachflow.models.timeline import TimelineEvent
from breachflow.models.watchdog import DeadlineWarning, StaffCursor

__all__ = [
    "AlertGroup",
    "AlertSource",
    "Announcement",
    "AnnouncementDecision",
    "ApiKey",
    "Assessment",
    "Base",
    "DeadlineWarning",
    "DeliveryReport",
    "Incident",
    "Meta",
    "NoticeVersion",
    "Notification",
    "ProviderSlot",
    "PublicReport",
    "RateLimit",
    "RegulatorReport",
    "SeenSignature",
    "StaffCursor",
    "StepDone",
    "StoredCheckpoint",
    "Subject",
    "TimelineEvent",
]
