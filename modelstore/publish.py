"""Atomic publication of model folders, versioned so that a swap is one rename.

Layout: ``ROOT/NAME`` is a symbolic link to ``ROOT/.versions/NAME/VERSION/``. A new
version is built in a temporary folder beside its final place, renamed into place, and
the link is replaced with ``os.replace`` (atomic on POSIX): a reader sees the old
version or the new one, never a mix, and a run that dies leaves the old link intact.
"""

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from modelstore.layout import STAGING_PREFIX, VERSIONS_DIR, ModelFolder


class PublishError(Exception):
    """A new version cannot be written where it belongs (not writable, no space)."""


def staging_folder(out: Path) -> Path:
    """A fresh temporary folder on the same file system as ``out``'s final version."""
    versions = ModelFolder(out).versions
    versions.mkdir(parents=True, exist_ok=True)
    # The writer's id in the name tells a dead writer's leftovers from a live one's.
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{_writer_tag()}_", dir=versions))


def ensure_writable(out: Path, needed_bytes: int) -> None:
    """Fail before any training when ``out``'s versions folder cannot take a new version:
    not creatable, not writable, or less than ``needed_bytes`` free."""
    versions = ModelFolder(out).versions
    try:
        staging_folder(out).rmdir()
    except OSError as exc:
        raise PublishError(f"model folder {out} is not writable: {exc}") from exc
    free = shutil.disk_usage(versions).free
    if free < needed_bytes:
        raise PublishError(
            f"not enough space for a new version of {out}: {free / 2**20:.1f} MiB free, "
            f"about {needed_bytes / 2**20:.1f} MiB needed"
        )


def new_version_id() -> str:
    """A sortable version id: UTC time to the millisecond."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"


def publish(staging: Path, out: Path, version: str, keep: int = 3) -> Path:
    """Move ``staging`` to its version folder and point ``out`` at it; keep ``keep`` versions."""
    versions = ModelFolder(out).versions
    final = versions / version
    staging.chmod(0o755)  # mkdtemp makes it private; readers (other replicas) need it
    os.replace(staging, final)
    _fsync_dir(versions)
    if out.exists() and not out.is_symlink():
        # A plain folder from elsewhere: keep it as a version instead of deleting it.
        os.replace(out, versions / f"imported-{version}")
    link_tmp = out.parent / f".{out.name}.link-{_writer_tag()}"
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
    link_tmp = out.parent / f".{out.name}.link-{_writer_tag()}"
    link_tmp.symlink_to(Path(VERSIONS_DIR) / out.name / older[-1])
    os.replace(link_tmp, out)
    return older[-1]


def list_versions(out: Path) -> list[str]:
    """Complete versions of ``out``, oldest first (staging folders excluded)."""
    versions = ModelFolder(out).versions
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_version(out: Path) -> str | None:
    """The version ``out`` points at, or None when it is not a versioned link."""
    return Path(os.readlink(out)).name if out.is_symlink() else None


def prune_versions(out: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` versions (never the current one) and stale staging."""
    versions = ModelFolder(out).versions
    current = current_version(out)
    names = list_versions(out)
    for name in names[: max(len(names) - keep, 0)]:
        if name != current:
            shutil.rmtree(versions / name, ignore_errors=True)
    discard_partial(out)


def discard_partial(out: Path) -> list[Path]:
    """Remove what a killed writer of ``out`` left: staging folders and temporary links
    whose process is gone (or that are a day old). Returns what was removed."""
    versions = ModelFolder(out).versions
    leftovers = [
        *(versions.glob(f"{STAGING_PREFIX}*") if versions.is_dir() else []),
        *out.parent.glob(f".{out.name}.link-*"),
    ]
    removed = []
    for path in leftovers:
        if _writer_alive(path) and _age_s(path) < 24 * 3600:
            continue
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _writer_tag() -> str:
    """``PID_HOST``: replicas sharing a models volume have their own process ids."""
    return f"{os.getpid()}_{_host()}"


def _host() -> str:
    """This host's name, with ``_`` (the tag's separator) replaced."""
    return socket.gethostname().replace("_", "-")


def _writer_alive(path: Path) -> bool:
    """Whether the writer named in ``.staging-PID_HOST_xxx`` or ``.NAME.link-PID_HOST`` may
    still run: its process is alive here, or it ran on another host (judged by age only)."""
    name = path.name
    tag = (
        name[len(STAGING_PREFIX) :]
        if name.startswith(STAGING_PREFIX)
        else name.rpartition(".link-")[2]
    )
    pid_text, _, rest = tag.partition("_")
    host = rest.split("_", 1)[0]
    if not pid_text.isdigit():
        return False  # names of older releases carry no writer
    if host != _host():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    pid = int(pid_text)
    # A restarted container numbers its processes from 1 again: a live process that started
    # after the path was last written is another one with the dead writer's id.
    return not _zombie(pid) and not _started_after(pid, _mtime(path))


def _zombie(pid: int) -> bool:
    """A killed process that nobody has reaped yet still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def _started_after(pid: int, moment: float) -> bool:
    """Whether process ``pid`` started more than a second after ``moment`` (epoch seconds)."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        boot_line = next(
            line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
    except (OSError, StopIteration):
        return False
    # Field 22 of /proc/PID/stat: the start in clock ticks after boot (btime, epoch seconds).
    started = int(boot_line.split()[1]) + int(after_name[19]) / os.sysconf("SC_CLK_TCK")
    return started > moment + 1.0


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return time.time()


def _age_s(path: Path) -> float:
    return time.time() - _mtime(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
