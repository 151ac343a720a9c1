"""The registry of collectors and checks is complete and every unit is self-contained:
registered, with a README that embeds a sample config that validates."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

import collectors
from checks.hygiene import HYGIENE_CHECKS
from collectors.registry import CHECKS, COLLECTORS, sweeps
from monitor.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[2]
#: collectors/ modules that are shared plumbing, not units
SHARED = {"config", "registry", "sweep", "targets", "unit"}


def unit_folders() -> set[str]:
    base = Path(collectors.__path__[0])
    return {p.name for p in base.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def test_every_folder_is_a_registered_unit() -> None:
    names = [c.name for c in COLLECTORS]
    assert len(names) == len(set(names))
    assert unit_folders() == set(names)
    base = Path(collectors.__path__[0])
    loose = {p.stem for p in base.glob("*.py")} - SHARED - {"__init__"}
    assert not loose, f"modules outside a unit folder: {loose}"


@pytest.mark.parametrize("unit", COLLECTORS, ids=lambda c: c.name)
def test_unit_has_readme_embedding_a_valid_sample(unit: collectors.unit.Collector) -> None:
    folder = unit.folder
    sample = (folder / "sample.toml").read_text(encoding="utf-8")
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert sample.strip() in readme, f"{unit.name}/README.md does not embed sample.toml"
    for heading in ("## Configuration", "## What it emits", "## How it fails"):
        assert heading in readme, (unit.name, heading)
    config = parse_config(tomllib.loads(sample), f"collectors/{unit.name}/sample.toml")
    if unit.section:
        assert unit.section in tomllib.loads(sample), "the sample shows the unit's own section"
        assert isinstance(unit.config_of(config), unit.config_model)  # type: ignore[arg-type]
    importlib.import_module(f"collectors.{unit.name}")


def test_sections_and_jobs_come_from_the_registry() -> None:
    fields = Config.model_fields
    schedule = Config().schedule
    for unit in COLLECTORS:
        if unit.section:
            assert unit.section in fields, unit.name
        if unit.job:
            assert unit.interval and getattr(schedule, unit.job) == unit.interval
    assert {c.name for c in sweeps()} >= {"dnsbl", "hygiene"}


def test_docs_index_lists_every_collector() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for unit in COLLECTORS:
        assert f"(collectors/{unit.name}/README.md)" in readme, unit.name


def test_sweep_only_choices_are_the_registered_sweeps() -> None:
    from monitor.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    sweep = sub.choices["sweep"]  # type: ignore[index]
    only = next(a for a in sweep._actions if a.dest == "only")
    assert list(only.choices) == [c.name for c in sweeps()]


def test_every_check_is_registered_and_documented() -> None:
    provider = {c for c in CHECKS if c.startswith(("snds", "gmail-"))}
    assert set(CHECKS) == {"dnsbl", *HYGIENE_CHECKS, *provider}
    for name, doc in CHECKS.items():
        assert f"`{name}`" in (ROOT / doc).read_text(), (name, doc)


def test_dashboards_know_every_hygiene_check() -> None:
    build = (ROOT / "grafana" / "build.py").read_text()
    for name in HYGIENE_CHECKS:
        assert f'"{name}"' in build or f"'{name}'" in build or name in build, name
