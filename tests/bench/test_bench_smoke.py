"""The blocklist sweep benchmark runs end to end (a quick pass) and reports a ratio."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_dnsbl_sweep_quick() -> None:
    if shutil.which("dnsperf") is None:
        pytest.skip("dnsperf is not installed (bash .ci/run installs it)")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "dnsbl_sweep.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"repmon transport.*\s\d+\.\d{3}\s", out.stdout), out.stdout
    assert "every answer matched the zone files" in out.stdout
