"""The status file a running service keeps beside its workspace, for the studio and the CLI to read.

``shop.sqlite.serve.json`` holds where the service listens, which run it serves and how many
events it has received; the service rewrites it every few seconds and removes it when it
stops. A file rather than a row: reading it never touches the database, so the studio can
poll it from the GUI thread. A file left by a killed service goes stale and reads as stopped.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

HEARTBEAT_S = 2.0  # how often a running service rewrites its status
STALE_S = 15.0  # a status older than this belongs to a service that is gone


@dataclass(frozen=True)
class ServiceStatus:
    pid: int
    host: str  # machine name: a pid only means something on the machine that wrote it
    url: str
    run: int
    started_at: float
    updated_at: float
    events_received: int

    def is_live(self, now: Optional[float] = None) -> bool:
        """Written recently, by a process that still exists (when it ran on this machine)."""
        if (now if now is not None else time.time()) - self.updated_at > STALE_S:
            return False
        return self.host != socket.gethostname() or _process_exists(self.pid)


def status_path(workspace_path: os.PathLike | str) -> Path:
    path = Path(workspace_path)
    return path.with_name(path.name + ".serve.json")


def write_status(workspace_path, status: ServiceStatus) -> None:
    """Replace the status file at once (write a temporary file, then rename): a reader never sees half of it."""
    target = status_path(workspace_path)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(status)), encoding="utf-8")
    os.replace(temporary, target)


def remove_status(workspace_path, pid: int) -> None:
    """Remove the status file if it is still this process's (another service may have taken over)."""
    current = read_status(workspace_path, live_only=False)
    if current is not None and current.pid == pid and current.host == socket.gethostname():
        status_path(workspace_path).unlink(missing_ok=True)


def read_status(workspace_path, live_only: bool = True) -> Optional[ServiceStatus]:
    """The service running on this workspace, or None (no file, unreadable, or stale when ``live_only``)."""
    try:
        values = json.loads(status_path(workspace_path).read_text(encoding="utf-8"))
        status = ServiceStatus(**values)
    except (OSError, ValueError, TypeError):
        return None
    return status if not live_only or status.is_live() else None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
