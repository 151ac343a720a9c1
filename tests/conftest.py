"""Shared fixtures: stores on SQLite and on the local PostgreSQL, and the corpus path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.store import Store
from tests import netguard
from tests.pg import pg_available, pg_schema_url

netguard.install()


#: helper modules that start real servers: a test module importing one is a ``servers`` test
_SERVER_HELPERS = (
    "tests.servers",
    "tests.tsdb_servers",
    "tests.sink_support",
    "tests.daemon_support",
    "tests.hygiene_zones",
    "tests.pg",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that starts a real server (or uses PostgreSQL) ``servers``, so that
    ``pytest -m "not servers"`` runs the fast tier alone."""
    sources: dict[str, bool] = {}
    for item in items:
        path = str(item.path)
        if path not in sources:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            sources[path] = any(h in text for h in _SERVER_HELPERS)
        fixtures = getattr(item, "fixturenames", ())
        uses_pg = "pg_url" in fixtures or ("store_url" in fixtures and "postgresql" in item.name)
        if sources[path] or uses_pg:
            item.add_marker(pytest.mark.servers)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if netguard.violations:
        print(f"\nthe tests tried to reach beyond loopback: {sorted(set(netguard.violations))}")
        session.exitstatus = 1


ROOT = Path(__file__).resolve().parent.parent
#: the labelled third-party corpus; absent in a user's clone
CORPUS = Path(os.environ.get("REPMON_CORPUS", ROOT.parent / "shared" / "corpus"))

_PG = None


def _pg_ok() -> bool:
    global _PG
    if _PG is None:
        _PG = pg_available()
    return _PG


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'repmon.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    if not _pg_ok():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 in CI")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    with pg_schema_url() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'repmon.db'}"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"third-party corpus not found at {CORPUS} (set REPMON_CORPUS)")
    return CORPUS
