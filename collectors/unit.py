"""What a collector is: one folder under ``collectors/``, described by one :class:`Collector`.

A collector gathers data and hands it on; it never schedules itself, writes SQL or talks
to a time-series engine. The application (``monitor``) reads :data:`collectors.registry.COLLECTORS`
to build the config sections, the daemon's jobs, ``repmon sweep --only`` and the docs index.

Each folder holds its code, ``config.py`` (its section model, when it has one),
``sample.toml`` (a config excerpt that validates) and ``README.md`` (what it collects, its
config with the sample embedded, what it emits, how it fails).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.config import ResolverConfig, Section
from collectors.sweep import Recorder, SweepSummary
from collectors.targets import Targets

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SweepContext:
    """What a scheduled sweep is given each run."""

    #: the collector's own config section (an instance of its ``config_model``), or None
    section: Any
    resolver: ResolverConfig
    targets: Targets
    recorder: Recorder
    #: a progress bar on stderr: True, False, or None for "when stderr is a terminal"
    progress: bool | None = None
    #: set when the application is stopping: a sweep ends at its next chunk
    stop: threading.Event | None = None


Sweep = Callable[[SweepContext], Coroutine[Any, Any, SweepSummary]]


@dataclass(frozen=True)
class Collector:
    """One collector: its name, config section, schedule and what runs it."""

    #: folder under ``collectors/`` and the name ``repmon sweep --only`` takes
    name: str
    #: one line for the docs index
    title: str
    #: the config section it owns (``[dnsbl]``), or None when it reads only shared sections
    section: str | None = None
    config_model: type[Section] | None = None
    #: the ``[schedule]`` key of its job and its default interval, when it runs on a schedule
    job: str | None = None
    interval: str | None = None
    #: the scheduled work, when it has any
    sweep: Sweep | None = None
    #: scheduled work runs on the leader only (one instance of several)
    leader_only: bool = True

    @property
    def folder(self) -> Path:
        return ROOT / self.name

    def config_of(self, config: Any) -> Any:
        """This collector's section of the application config (None when it owns none)."""
        return getattr(config, self.section) if self.section else None
