"""Per-browser state of the explorer: faces, export jobs and a private temporary folder.

A session is created for every browser that has no (or an unknown) session cookie;
its id is a random token made here, never a value taken from the request. Faces
and export jobs get ids the same way, and every file a session owns lives in its
own folder under the app's temporary root, named by the server. So no part of a
request path or of a user's file name ever reaches the file system.

Counts are bounded (sessions, faces per session, jobs per session); the least
recently used session is dropped, with its folder, when the limit is reached or
when it has been idle for :attr:`SessionLimits.idle_seconds`.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["Face", "Job", "Session", "SessionStore", "SessionLimits", "new_id"]


def new_id(nbytes: int = 9) -> str:
    """A random URL-safe id (12 characters for 9 bytes): unguessable, so ids cannot be enumerated."""
    return secrets.token_urlsafe(nbytes)


@dataclass(frozen=True)
class SessionLimits:
    """Bounds that keep one server from growing without limit.

    Attributes:
        max_sessions: browsers served at once; the least recently used is dropped beyond this.
        max_faces: faces per session (uploads, examples, random faces, gallery picks).
        max_jobs: export jobs remembered per session; the oldest finished one (and its video) goes first.
        max_tabs: slider channels (browser tabs) tracked per session for dropping stale requests.
        idle_seconds: a session unused this long is dropped with its folder.
    """

    max_sessions: int = 16
    max_faces: int = 48
    max_jobs: int = 4
    max_tabs: int = 16
    idle_seconds: float = 6 * 3600

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_faces", "max_jobs", "max_tabs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.idle_seconds > 0:
            raise ValueError(f"idle_seconds must be positive, got {self.idle_seconds}")


@dataclass
class Face:
    """One face of a session.

    Attributes:
        id: server-made id.
        name: what the page shows (the upload's file name, cleaned; never used as a path).
        kind: ``upload``, ``example``, ``random`` or ``gallery``.
        status: ``queued``, ``aligning``, ``encoding``, ``refining``, ``ready`` or ``error``.
        error: one-line message when ``status == "error"``.
        ws: the W+ code [num_ws, w_dim] (float32, CPU) once ready.
        aligned_png, reconstruction_png: the images the page shows.
        cached: the code came from the content-hash cache.
    """

    id: str
    name: str
    kind: str
    status: str = "queued"
    error: str = ""
    ws: torch.Tensor | None = None
    aligned_png: bytes | None = None
    reconstruction_png: bytes | None = None
    cached: bool = False
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "status": self.status, "error": self.error,
                "cached": self.cached, "has_aligned": self.aligned_png is not None,
                "has_reconstruction": self.reconstruction_png is not None}


@dataclass
class Job:
    """A video export.

    Attributes:
        id: server-made id.
        status: ``queued``, ``rendering``, ``done`` or ``error``.
        done, total: frames written so far, and in all.
        path: the finished video inside the session folder (server-made name).
    """

    id: str
    total: int
    status: str = "queued"
    done: int = 0
    error: str = ""
    path: Path | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status, "done": self.done, "total": self.total,
                               "error": self.error, "seconds": round(self.seconds, 2)}
        if self.status == "done":
            out["url"] = f"/api/exports/{self.id}/morph.mp4"
        return out


class Session:
    """Faces, jobs and the folder of one browser; its lock guards the dicts."""

    def __init__(self, sid: str, folder: Path, limits: SessionLimits) -> None:
        self.id, self.folder, self.limits = sid, folder, limits
        self.faces: dict[str, Face] = {}
        self.jobs: dict[str, Job] = {}
        self.latest_seq: dict[str, int] = {}
        self.lock = threading.Lock()
        self.last_used = time.monotonic()

    def add_face(self, name: str, kind: str) -> Face:
        """Register a new face; raises ``LookupError`` when the session is full."""
        with self.lock:
            if len(self.faces) >= self.limits.max_faces:
                raise LookupError(f"this session already holds {self.limits.max_faces} faces; reload the page "
                                  "to start over")
            face = Face(new_id(), name, kind)
            self.faces[face.id] = face
            return face

    def face(self, face_id: Any) -> Face | None:
        with self.lock:
            return self.faces.get(face_id) if isinstance(face_id, str) else None

    def add_job(self, total: int) -> Job:
        """Register an export; forgets (and deletes) the oldest finished one beyond the limit."""
        with self.lock:
            while len(self.jobs) >= self.limits.max_jobs:
                finished = [j for j in self.jobs.values() if j.status in ("done", "error")]
                if not finished:
                    raise LookupError(f"{len(self.jobs)} videos are already being rendered; wait for one to finish")
                old = finished[0]
                del self.jobs[old.id]
                if old.path is not None:
                    old.path.unlink(missing_ok=True)
            job = Job(new_id(), total)
            self.jobs[job.id] = job
            return job

    def job(self, job_id: Any) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id) if isinstance(job_id, str) else None

    def accept_seq(self, tab: str, seq: int) -> bool:
        """Record a slider request's sequence number; False if a newer one of the same tab was seen."""
        with self.lock:
            latest = self.latest_seq.get(tab)
            if latest is not None and seq < latest:
                return False
            if latest is None and len(self.latest_seq) >= self.limits.max_tabs:
                self.latest_seq.pop(next(iter(self.latest_seq)))
            self.latest_seq[tab] = seq
            return True

    def is_latest(self, tab: str, seq: int) -> bool:
        """Whether ``seq`` is still the newest request of ``tab`` (a newer one supersedes it)."""
        with self.lock:
            return self.latest_seq.get(tab, seq) <= seq


class SessionStore:
    """All sessions of one app, each with a folder under one temporary root.

    Args:
        limits: see :class:`SessionLimits`.
        root: parent of the temporary root (default: the system's temp folder).
    """

    def __init__(self, limits: SessionLimits | None = None, root: str | Path | None = None) -> None:
        self.limits = limits or SessionLimits()
        self.root = Path(tempfile.mkdtemp(prefix="sgm-explore-", dir=root))
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def get(self, sid: Any) -> Session | None:
        """The session for a cookie value, or None when unknown (the value is only a dict key)."""
        with self._lock:
            session = self._sessions.get(sid) if isinstance(sid, str) else None
            if session is not None:
                session.last_used = time.monotonic()
            return session

    def create(self) -> Session:
        """A new session with its own folder; drops idle or least recently used ones first."""
        with self._lock:
            now = time.monotonic()
            for old in [s for s in self._sessions.values() if now - s.last_used > self.limits.idle_seconds]:
                self._drop(old)
            while len(self._sessions) >= self.limits.max_sessions:
                self._drop(min(self._sessions.values(), key=lambda s: s.last_used))
            sid = new_id(18)
            folder = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
            session = Session(sid, folder, self.limits)
            self._sessions[sid] = session
            return session

    def _drop(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        shutil.rmtree(session.folder, ignore_errors=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def close(self) -> None:
        """Forget every session and delete the temporary root."""
        with self._lock:
            self._sessions.clear()
        shutil.rmtree(self.root, ignore_errors=True)
