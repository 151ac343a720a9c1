"""The registry of collectors and checks is complete and every unit is documented."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import collectors
from checks.hygiene import HYGIENE_CHECKS
from collectors.registry import CHECKS, COLLECTORS

ROOT = Path(__file__).resolve().parents[2]


def test_every_collector_imports_and_is_documented() -> None:
    for name, (module, doc) in COLLECTORS.items():
        importlib.import_module(module)
        text = (ROOT / doc).read_text()
        path = module.replace(".", "/")
        assert path in text or f"{path}.py" in text or module in text, (name, doc)


def test_every_collector_module_is_registered() -> None:
    registered = {m for m, _ in COLLECTORS.values()}
    top = {
        f"collectors.{m.name}"
        for m in pkgutil.iter_modules(collectors.__path__)
        if m.name not in ("registry", "sweep")
    }
    top |= {
        f"collectors.sweep.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "collectors/sweep")])
    }
    top -= {"collectors.sweep"}
    assert top <= registered, top - registered


def test_every_check_is_registered_and_documented() -> None:
    assert set(CHECKS) == {"dnsbl", *HYGIENE_CHECKS}
    for name, doc in CHECKS.items():
        assert f"`{name}`" in (ROOT / doc).read_text(), (name, doc)


def test_dashboards_know_every_hygiene_check() -> None:
    build = (ROOT / "grafana" / "build.py").read_text()
    for name in HYGIENE_CHECKS:
        assert f'"{name}"' in build or f"'{name}'" in build or name in build, name
