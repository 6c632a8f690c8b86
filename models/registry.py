"""Imports every model so that ``Base.metadata`` knows all tables (for Alembic)."""

from models.alert import AlertGroup, AlertSource, SeenSignature
from models.announcement import Announcement, AnnouncementDecision
from models.apikey import ApiKey
from models.assessment import Assessment
from models.base import Base
from models.incident import Incident
from models.meta import Meta
from models.notice import NoticeVersion
from models.notification import DeliveryReport, Notification
from models.pacing import ProviderSlot, RateLimit
from models.public_report import PublicReport
from models.regulator_report import RegulatorReport
from models.runbook import StepDone
from models.subject import Subject
from models.timeline import TimelineEvent
from models.watchdog import DeadlineWarning

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
    "StepDone",
    "Subject",
    "TimelineEvent",
]
