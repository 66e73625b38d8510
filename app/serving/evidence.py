"""The evidence store: a record of every flagged input, kept for the security team.

One SQLite file on a volume (``EVIDENCE_DIR``), in WAL mode with a busy timeout, so that
several replicas on one host can write to it at once and a restart loses nothing written.
(SQLite's locking needs a local file system: not NFS.) Records are written by one thread
per replica from a bounded queue, so ``/predict`` never waits on the disk: when the queue
is full or the store cannot be written (full disk, read-only volume), the record is
dropped and ``on_drop(reason)`` counts it; the answer goes out all the same.

The store is bounded by record count and bytes: the oldest records go first. Images are
kept only with ``keep_images`` (faces are personal data); the SHA-256 always is.
"""

import contextlib
import hashlib
import io
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

DATABASE = "evidence.sqlite"
RECORD_OVERHEAD_BYTES = 512
"""What a record without its image counts against the byte bound."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at REAL NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    rule TEXT NOT NULL,
    label INTEGER NOT NULL,
    bad_label INTEGER NOT NULL,
    repaired_label INTEGER NOT NULL,
    confidence REAL NOT NULL,
    overlap REAL NOT NULL,
    support REAL NOT NULL,
    sha256 TEXT NOT NULL,
    client TEXT NOT NULL,
    filename TEXT,
    image BLOB,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_model ON evidence (model, id);
"""
COLUMNS = (
    "id, recorded_at, model, version, rule, label, bad_label, repaired_label, confidence, "
    "overlap, support, sha256, client, filename, image IS NOT NULL AS has_image"
)


@dataclass(frozen=True)
class Flagged:
    """One flagged input as the service saw it: ``content`` is the image file as sent, or
    empty with ``pixels`` (a decoded uint8 image, from ``/v2``), which the writer encodes
    as PNG off the event loop."""

    model: str
    version: str
    rule: dict
    label: int
    bad_label: int
    repaired_label: int
    confidence: float
    overlap: float
    support: float
    client: str
    filename: str | None
    content: bytes
    pixels: np.ndarray | None = None

    def file_bytes(self) -> bytes:
        if self.content or self.pixels is None:
            return self.content
        buffer = io.BytesIO()
        Image.fromarray(self.pixels).save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass(frozen=True)
class StoreLimits:
    max_records: int = 100_000
    max_bytes: int = 512 * 2**20
    keep_images: bool = False
    queue_size: int = 1024


class EvidenceStore:
    """Records flagged inputs in the background; lists, fetches, exports and deletes them."""

    def __init__(self, folder: Path, limits: StoreLimits, on_drop: Callable[[str], None]) -> None:
        self.path = folder / DATABASE
        self.limits, self._on_drop = limits, on_drop
        self._queue: queue.Queue[Flagged | None] = queue.Queue(limits.queue_size)
        self._writer: threading.Thread | None = None
        self.available = True
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self.available = False  # writes are counted as dropped; reads answer 503
            log.warning("evidence store %s unavailable: %s", self.path, exc)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = _row_as_dict
        return db

    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_loop, name="evidence", daemon=True)
        self._writer.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (waiting at most ``timeout_s``), then stop the writer."""
        if self._writer is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._writer.join(timeout_s)
        self._writer = None

    def record(self, flagged: Flagged) -> None:
        """Queue ``flagged`` for writing; never blocks (a full queue drops it, counted)."""
        if not self.available:
            self._on_drop("unavailable")
            return
        try:
            self._queue.put_nowait(flagged)
        except queue.Full:
            self._on_drop("queue_full")

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _write_loop(self) -> None:
        # A connection per record: flagged inputs are rare, and a volume that went away
        # and came back is written to again without a restart.
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                with contextlib.closing(self._connect()) as db:
                    self._insert(db, item)
            except (OSError, sqlite3.Error) as exc:
                self._on_drop("unwritable")
                log.warning("evidence record lost: %s", exc)
            finally:
                self._queue.task_done()

    def _insert(self, db: sqlite3.Connection, item: Flagged) -> None:
        content = item.file_bytes()
        image = content if self.limits.keep_images else None
        size = RECORD_OVERHEAD_BYTES + (len(image) if image else 0)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO evidence (recorded_at, model, version, rule, label, bad_label, "
                "repaired_label, confidence, overlap, support, sha256, client, filename, "
                "image, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(), item.model, item.version, json.dumps(item.rule), item.label,
                    item.bad_label, item.repaired_label, item.confidence, item.overlap,
                    item.support, hashlib.sha256(content).hexdigest(), item.client,
                    item.filename, image, size,
                ),
            )  # fmt: skip
            self._evict(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _evict(self, db: sqlite3.Connection) -> None:
        """Delete the oldest records until both bounds hold."""
        totals = db.execute("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM evidence")
        count, total = totals.fetchone().values()
        if count <= self.limits.max_records and total <= self.limits.max_bytes:
            return
        cutoff = None
        for row in db.execute("SELECT id, size FROM evidence ORDER BY id"):
            row_id, size = row["id"], row["size"]
            if count <= self.limits.max_records and total <= self.limits.max_bytes:
                break
            cutoff, count, total = row_id, count - 1, total - size
        if cutoff is not None:
            db.execute("DELETE FROM evidence WHERE id <= ?", (cutoff,))

    # Reads, for the admin endpoints (each opens its own connection: any thread).

    def list(self, model: str | None, before: int | None, limit: int) -> list[dict]:
        """Records newest first, without images; ``before`` pages on by id."""
        query = f"SELECT {COLUMNS} FROM evidence WHERE (? IS NULL OR model = ?)"
        query += " AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
        with self._reading() as db:
            rows = db.execute(query, (model, model, before, before, limit)).fetchall()
        return [_as_dict(row) for row in rows]

    def get(self, record_id: int) -> dict | None:
        with self._reading() as db:
            row = db.execute(f"SELECT {COLUMNS} FROM evidence WHERE id = ?", (record_id,))
            found = row.fetchone()
        return _as_dict(found) if found else None

    def image(self, record_id: int) -> bytes | None:
        with self._reading() as db:
            row = db.execute("SELECT image FROM evidence WHERE id = ?", (record_id,)).fetchone()
        return row["image"] if row else None

    def delete(self, model: str | None = None, record_id: int | None = None) -> int:
        """Delete one record, a model's, or all; return how many."""
        with self._reading() as db:
            cursor = db.execute(
                "DELETE FROM evidence WHERE (? IS NULL OR model = ?) AND (? IS NULL OR id = ?)",
                (model, model, record_id, record_id),
            )
            return cursor.rowcount

    def export(self) -> Iterator[tuple[dict, bytes | None]]:
        """Every record, oldest first, with its image when kept."""
        with self._reading() as db:
            for row in db.execute(f"SELECT {COLUMNS}, image FROM evidence ORDER BY id"):
                yield _as_dict(row), row["image"]

    def _reading(self) -> sqlite3.Connection:
        if not self.available:
            raise sqlite3.OperationalError(f"evidence store {self.path} is unavailable")
        return contextlib.closing(self._connect())


def _row_as_dict(cursor: sqlite3.Cursor, row: tuple) -> dict:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _as_dict(row: dict) -> dict:
    record = {key: value for key, value in row.items() if key != "image"}
    record["rule"] = json.loads(record["rule"])
    record["has_image"] = bool(record["has_image"])
    return record
