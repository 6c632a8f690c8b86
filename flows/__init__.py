"""Prefect flows and tasks: the only place that orchestrates side effects.

Importing this package first points Prefect at Breachflow's embedded defaults (its home
under ``.breach/prefect``, a patient ephemeral-server start-up, no telemetry) unless the
environment already says otherwise, as it must before ``prefect`` is imported.
"""

import os

from breachflow.models.settings import Settings

os.environ.setdefault("PREFECT_HOME", str(Settings().prefect_home.resolve()))
os.makedirs(os.environ["PREFECT_HOME"], exist_ok=True)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
