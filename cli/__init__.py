"""The ``breach`` command line.

Prefect reads its settings when first imported, so they are set here, before any command
module can import it. Its console log would repeat, with a traceback, what this CLI already
reports (and the timeline records); ``PREFECT_LOGGING_LEVEL=INFO`` brings it back. Errors
that are not the user's still end in a traceback from ``main``.
"""

import os

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
