"""Retention: what the housekeeping job deletes, and only that."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from monitor.config import Config, parse_duration
from monitor.store import Store, utcnow
from monitor.store.retention import delete_expired

log = logging.getLogger("repmon.housekeeping")


def housekeeping(store: Store, config: Config, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete rows and spooled files past ``[retention]``; return counts per kind."""
    now = now or utcnow()
    ret = config.retention
    fb = now - dt.timedelta(seconds=parse_duration(ret.feedback))
    hist = now - dt.timedelta(seconds=parse_duration(ret.history))
    out = delete_expired(store, fb, hist)
    out["spool_done_files"] = _prune_spool(
        Path(config.sink.spool) / "done", now - dt.timedelta(seconds=parse_duration(ret.spool_done))
    )
    log.info(
        "housekeeping: %s", ", ".join(f"{k}={v}" for k, v in out.items() if v) or "nothing to do"
    )
    return out


def _prune_spool(done: Path, before: dt.datetime) -> int:
    if not done.is_dir():
        return 0
    cutoff = before.timestamp()
    n = 0
    for entry in os.scandir(done):
        try:
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                n += 1
        except FileNotFoundError:
            continue
    return n
