"""Who holds a lease: a worker id that says which process on which host.

Leases (ledger rows being sent, provider connection slots) expire on their own, but a
restarted process on the same host need not wait for that: if the owner's process no
longer exists, its leases are orphaned and can be taken over at once.
"""

from __future__ import annotations

import os
import socket
import uuid

HOST = socket.gethostname()


def worker_id() -> str:
    """``host/pid/nonce``: unique per run, and tells whether its process is still alive."""
    return f"{HOST}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def orphaned(owner: str) -> bool:
    """True if ``owner`` was a process on this host that no longer exists."""
    host, _, rest = owner.partition("/")
    pid = rest.partition("/")[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
