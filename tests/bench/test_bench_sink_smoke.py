"""The sink benchmark runs end to end in its quick mode and finds no loss."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sink_throughput_quick() -> None:
    pytest.importorskip("collectors.feedback.pipeline")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sink_throughput.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "no-op aiosmtpd handler:" in out
    assert "ratio sustained / no-op:" in out
    assert "every 250'd message stored exactly once" in out
