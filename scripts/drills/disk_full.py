"""Drill: the disk under a SQLite database fills up under write load, then space is freed.

The database lives on a small filesystem of its own: a tmpfs mounted for the drill (root, or
CAP_SYS_ADMIN), else an ext4 image on a loop device; without either the drill says so and stops
(exit 2, "skipped" in the JSON). The data folder (ledger key, server log) stays on the normal
disk. Recorders post EPCIS events and ingesters post reading batches (resent until acknowledged)
while a filler file takes all but the last megabytes, so the writes themselves fill the disk.
After a while the filler is removed; `dv serve` is never restarted. Checks:

- while the disk is full, a write is answered 2xx (it still fitted) or 507 Insufficient Storage
  as application/problem+json naming the full disk; never 500, never left without an answer;
- reads keep working (every read 2xx);
- once space is freed, writes succeed again by themselves within --recover seconds;
- PRAGMA integrity_check is "ok", `dv ledger verify` passes, every acknowledged event is in the
  ledger and every acknowledged reading stored exactly once, nothing half-written.

507 rather than 503: the condition does not pass by waiting (someone must free space), reads
still work, and 507 names it exactly (RFC 4918 §11.5); docs/OPERATIONS.md says to alert on it.

    python scripts/drills/disk_full.py [--size-mb 64] [--seconds 3] [--full-seconds 4]

Prints figures; the last line is one JSON object. Exit 1 if a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Deployment, report
from _load import Load, check_stored

HEADROOM = 256 * 1024  # what the filler leaves for the writes to fill
SKIPPED = 2


class CannotMount(Exception):
    """No small filesystem could be made here."""


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def small_filesystem(folder: Path, size_mb: int) -> Iterator[str]:
    """Mount a filesystem of ``size_mb`` at ``folder``; yield what was used; unmount after."""
    attempts: list[str] = []
    image: Path | None = None
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(folder))
        used = f"tmpfs of {size_mb} MB"
    except (subprocess.CalledProcessError, OSError) as error:
        attempts.append(f"tmpfs: {_reason(error)}")
        image = folder.with_suffix(".img")
        try:
            with image.open("wb") as handle:
                handle.truncate(size_mb * 1024 * 1024)
            # -m 0: no blocks reserved for root, who runs the server here
            _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
            _run("mount", "-o", "loop", str(image), str(folder))
            used = f"ext4 image of {size_mb} MB on a loop device"
        except (subprocess.CalledProcessError, OSError) as error2:
            attempts.append(f"loop ext4: {_reason(error2)}")
            image.unlink(missing_ok=True)
            raise CannotMount("; ".join(attempts)) from None
    try:
        yield used
    finally:
        try:
            _run("umount", str(folder))
        except subprocess.CalledProcessError:
            _run("umount", "-l", str(folder))  # lazily, if something still holds it
        if image is not None:
            image.unlink(missing_ok=True)


def _reason(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        return (error.stderr or error.stdout or str(error)).strip()[:200]
    return str(error)[:200]


def fill(folder: Path, leave: int) -> Path:
    """A file taking all free space of ``folder``'s filesystem but ``leave`` bytes."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    size = max(0, stats.f_bavail * stats.f_frsize - leave)
    block = b"\0" * (1024 * 1024)
    with filler.open("wb") as handle:
        while size > 0:
            try:
                size -= handle.write(block[: min(size, len(block))])
            except OSError:
                break  # full already: fine
    return filler


def drill(deployment: Deployment, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    deployment.start()
    load = Load(deployment, recorders=2, ingesters=2, readers=1).start()
    figures: dict[str, Any] = {}
    try:
        time.sleep(args.seconds)
        filled = time.monotonic()
        filler = fill(folder, HEADROOM)
        # Wait for the writes to fill the rest: the first 507 (or give up after a minute).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(s.status == 507 and s.started >= filled for s in list(load.samples)):
                break
            time.sleep(0.1)
        full = time.monotonic()
        figures["seconds_to_fill_headroom"] = round(full - filled, 1)
        time.sleep(args.full_seconds)
        figures["free_bytes_when_full"] = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        filler.unlink()
        freed = time.monotonic()
        time.sleep(max(args.seconds, args.recover + 2))
    finally:
        load.stop()
    server_alive = deployment.server is not None and deployment.server.poll() is None
    deployment.stop()
    if os.environ.get("DV_DRILL_SAMPLES"):  # every request, for a closer look
        marks = {"filled": filled, "full": full, "freed": freed}
        load.dump(Path(os.environ["DV_DRILL_SAMPLES"]), marks)
    samples = load.samples
    while_full = [s for s in samples if full <= s.started and s.ended <= freed]
    writes_full = [s for s in while_full if s.kind != "read"]
    reads_full = [s for s in while_full if s.kind == "read"]
    bad_writes = [
        s
        for s in samples
        if s.started >= filled
        and s.kind != "read"
        and not (s.status and (200 <= s.status < 300 or (s.status == 507 and s.problem_json)))
    ]
    after = [s for s in samples if s.started >= freed]
    failures_after = [s for s in after if not (s.status and 200 <= s.status < 300)]
    recovered = max((s.ended for s in failures_after), default=freed) - freed
    writes_after = [s.ended for s in after if s.kind != "read" and s.status in (200, 201)]
    figures.update(
        {
            "dv_serve_kept_running": server_alive,
            "requests": len(samples),
            "status_counts": load.status_counts(),
            "status_507": sum(1 for s in samples if s.status == 507),
            "detail_507_examples": sorted({s.detail for s in samples if s.status == 507})[:2],
            "writes_while_full": len(writes_full),
            "writes_while_full_by_status": dict(
                Counter(str(s.status) if s.status else "none" for s in writes_full)
            ),
            "bad_write_answers": len(bad_writes),
            "bad_write_examples": sorted({f"{s.status} {s.detail[:120]}" for s in bad_writes})[:5],
            "reads_while_full": len(reads_full),
            "reads_while_full_failed": sum(
                1 for s in reads_full if not (s.status and 200 <= s.status < 300)
            ),
            "recovery_seconds": round(recovered, 2),
            "first_write_after_freeing_seconds": (
                round(min(writes_after) - freed, 2) if writes_after else None
            ),
            "slowest_request_seconds": round(max((s.seconds for s in samples), default=0.0), 2),
        }
    )
    figures.update(check_stored(load))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64, help="size of the small filesystem")
    parser.add_argument("--seconds", type=float, default=3.0, help="load before filling")
    parser.add_argument("--full-seconds", type=float, default=4.0, help="how long it stays full")
    parser.add_argument(
        "--recover", type=float, default=10.0, help="seconds for writes to succeed once freed"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dv-drill-disk-"))
    figures: dict[str, Any] = {}
    try:
        with small_filesystem(folder, args.size_mb) as used:
            figures["filesystem"] = used
            deployment = Deployment.create(None, sqlite_path=folder / "dv.db")
            keep = False
            try:
                figures.update(drill(deployment, folder, args))
                audit = deployment.audit()
                figures["ledger_audit_ok"] = audit["ok"]
                figures["sqlite_integrity"] = deployment.integrity()
                figures["ok"] = (
                    figures["dv_serve_kept_running"]
                    and figures["status_507"] > 0
                    and figures["bad_write_answers"] == 0
                    and figures["reads_while_full"] > 0
                    and figures["reads_while_full_failed"] == 0
                    and figures["first_write_after_freeing_seconds"] is not None
                    and figures["first_write_after_freeing_seconds"] <= args.recover
                    and figures["recovery_seconds"] <= args.recover
                    and figures["sqlite_integrity"] == "ok"
                    and figures["ledger_audit_ok"]
                    and figures["stored_ok"]
                )
                keep = not figures["ok"]
                if keep:
                    figures["kept_for_inspection"] = str(deployment.data_dir)
            finally:
                deployment.destroy(keep_files=keep)
    except CannotMount as error:
        figures.update({"ok": False, "skipped": f"no small filesystem could be made: {error}"})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(figures, exit_code=SKIPPED if "skipped" in figures else None)


if __name__ == "__main__":
    main()
