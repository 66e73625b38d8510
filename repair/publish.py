"""Atomic publication of model folders, versioned so that a swap is one rename.

Layout: ``ROOT/NAME`` is a symbolic link to ``ROOT/.versions/NAME/VERSION/``. A new
version is built in a temporary folder beside its final place, renamed into place, and
the link is replaced with ``os.replace`` (atomic on POSIX): a reader sees the old
version or the new one, never a mix, and a run that dies leaves the old link intact.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

VERSIONS_DIR = ".versions"


def staging_folder(out: Path) -> Path:
    """A fresh temporary folder on the same file system as ``out``'s final version."""
    versions = out.parent / VERSIONS_DIR / out.name
    versions.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=versions))


def new_version_id() -> str:
    """A sortable version id: UTC time to the millisecond."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"


def publish(staging: Path, out: Path, version: str, keep: int = 3) -> Path:
    """Move ``staging`` to its version folder and point ``out`` at it; keep ``keep`` versions."""
    versions = out.parent / VERSIONS_DIR / out.name
    final = versions / version
    staging.chmod(0o755)  # mkdtemp makes it private; readers (other replicas) need it
    os.replace(staging, final)
    _fsync_dir(versions)
    if out.exists() and not out.is_symlink():
        # A plain folder from elsewhere: keep it as a version instead of deleting it.
        os.replace(out, versions / f"imported-{version}")
    link_tmp = out.parent / f".{out.name}.link-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    link_tmp.symlink_to(Path(VERSIONS_DIR) / out.name / version)
    os.replace(link_tmp, out)
    _fsync_dir(out.parent)
    prune_versions(out, keep)
    return final


def rollback(out: Path) -> str:
    """Point ``out`` at the version before the current one; return that version's id."""
    versions = list_versions(out)
    current = current_version(out)
    older = [v for v in versions if current is None or v < current]
    if not older:
        raise FileNotFoundError(f"{out}: no earlier version to roll back to")
    link_tmp = out.parent / f".{out.name}.link-{os.getpid()}"
    link_tmp.symlink_to(Path(VERSIONS_DIR) / out.name / older[-1])
    os.replace(link_tmp, out)
    return older[-1]


def list_versions(out: Path) -> list[str]:
    """Complete versions of ``out``, oldest first (staging folders excluded)."""
    versions = out.parent / VERSIONS_DIR / out.name
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_version(out: Path) -> str | None:
    """The version ``out`` points at, or None when it is not a versioned link."""
    return Path(os.readlink(out)).name if out.is_symlink() else None


def prune_versions(out: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` versions (never the current one) and stale staging."""
    versions = out.parent / VERSIONS_DIR / out.name
    current = current_version(out)
    names = list_versions(out)
    for name in names[: max(len(names) - keep, 0)]:
        if name != current:
            shutil.rmtree(versions / name, ignore_errors=True)
    for staging in versions.glob(".staging-*"):
        if time.time() - staging.stat().st_mtime > 24 * 3600:
            shutil.rmtree(staging, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
