"""Versioned, atomic publication: a failed run leaves the published folder as it was."""

from pathlib import Path

import pytest

from modelstore import current_version, list_versions, publish, rollback, staging_folder

pytestmark = pytest.mark.fast


def _publish(out: Path, version: str, content: str) -> None:
    staging = staging_folder(out)
    (staging / "manifest.json").write_text(content)
    publish(staging, out, version)


def test_publish_swaps_link_and_keeps_previous_versions(tmp_path: Path) -> None:
    out = tmp_path / "models" / "m"
    _publish(out, "v1", "one")
    _publish(out, "v2", "two")
    assert out.is_symlink() and (out / "manifest.json").read_text() == "two"
    assert current_version(out) == "v2" and list_versions(out) == ["v1", "v2"]
    assert rollback(out) == "v1"
    assert (out / "manifest.json").read_text() == "one"


def test_publish_keeps_only_the_newest_versions(tmp_path: Path) -> None:
    out = tmp_path / "models" / "m"
    for number in range(5):
        _publish(out, f"v{number}", str(number))
    assert list_versions(out) == ["v2", "v3", "v4"]


def test_failed_repair_leaves_the_published_folder_untouched(tmp_path: Path) -> None:
    from repair.errors import RepairInputError
    from repair.pipeline import RepairInputs, fine_prune_to_folder

    out = tmp_path / "models" / "m"
    _publish(out, "v1", "kept")
    bad_model = tmp_path / "broken.h5"
    bad_model.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature, then junk
    with pytest.raises(RepairInputError):
        fine_prune_to_folder(RepairInputs(bad_model, tmp_path / "none.h5"), out)
    assert (out / "manifest.json").read_text() == "kept"
    assert list_versions(out) == ["v1"]
    assert not list((tmp_path / "models" / ".versions" / "m").glob(".staging-*"))


def test_rollback_command(tmp_path: Path, capsys) -> None:
    from repair.cli import main

    out = tmp_path / "models" / "m"
    assert main(["rollback", "--out", str(out)]) == 2
    _publish(out, "v1", "one")
    _publish(out, "v2", "two")
    assert main(["rollback", "--out", str(out)]) == 0
    assert (out / "manifest.json").read_text() == "one"


def test_leftovers_of_a_dead_writer_go_even_when_its_process_id_is_reused(
    tmp_path: Path,
) -> None:
    """A restarted container numbers its processes from 1 again, so a dead writer's id can
    belong to a live process: one that started after the leftover was written is not its
    writer. A live writer's staging folder stays."""
    import os
    import socket
    import subprocess
    import sys

    from modelstore import discard_partial

    out = tmp_path / "models" / "m"
    _publish(out, "v1", "one")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname().replace("_", "-")
        versions = out.parent / ".versions" / "m"
        reused = versions / f".staging-{other.pid}_{host}_dead"
        live = versions / f".staging-{os.getpid()}_{host}_live"
        for folder in (reused, live):
            folder.mkdir()
        stamp = reused.stat().st_mtime - 60  # written a minute before `other` started
        os.utime(reused, (stamp, stamp))
        assert discard_partial(out) == [reused]
        assert live.is_dir() and not reused.exists()
    finally:
        other.kill()
        other.wait()
