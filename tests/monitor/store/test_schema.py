"""The store's layout: every table in ``schema.py``, no import inside a function, and the
bucket length the collectors prepare rows with is the store's."""

from __future__ import annotations

import ast
from pathlib import Path

from collectors.feedback import pipeline
from collectors.volume import sent
from monitor.store import schema

STORE = Path(__file__).resolve().parents[3] / "monitor" / "store"


def test_the_collectors_bucket_like_the_store() -> None:
    assert pipeline.BUCKET_SECONDS == sent.BUCKET_SECONDS == schema.BUCKET_SECONDS


def test_every_table_is_declared_in_schema() -> None:
    assert set(schema.metadata.tables) == {
        "schema_version",
        "check_state",
        "state_changes",
        "problem_episodes",
        "sweep_runs",
        "sweep_coverage",
        "feedback_messages",
        "feedback_events",
        "feedback_counts",
        "dmarc_records",
        "sent_volume",
        "cases",
        "case_events",
        "notify_outbox",
        "job_runs",
        "feedback_senders",
        "series_exported",
        "series_buckets",
        "series_pending",
        "leader_heartbeat",
        "snds_activity",
        "snds_blocked_ranges",
        "postmaster_days",
        "postmaster_compliance",
        "provider_fetches",
        "abuse_messages",
        "abuse_reports",
        "abuse_addresses",
        "abuse_counts",
    }
    elsewhere = []
    for path in sorted(STORE.glob("*.py")):
        if path.name == "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "Table"
            ):
                elsewhere.append(f"{path.name}:{node.lineno}")
    assert not elsewhere, elsewhere


def test_no_import_inside_a_function_of_the_store() -> None:
    found = []
    for path in sorted(STORE.glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                found += [
                    f"{path.name}:{node.lineno}"
                    for node in ast.walk(fn)
                    if isinstance(node, ast.Import | ast.ImportFrom)
                ]
    assert not found, found
