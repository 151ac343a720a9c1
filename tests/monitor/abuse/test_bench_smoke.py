"""The abuse intake benchmark runs end to end in its quick mode and finds no loss."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_abuse_intake_quick() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "abuse_intake.py"), "--quick", "--messages", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "no-op aiosmtpd handler:" in out and "ratio sustained / no-op:" in out
    assert "meets the 20,000 rows/s target" in out
    assert "every 250'd message stored exactly once" in out
