"""`whetstone --report-startup`: the figures the smoke test and the cold-start benchmark read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_app_reports_its_start_and_closes(tmp_path):
    env = {
        **os.environ,
        "WHETSTONE_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.main", "--report-startup", "--report-after", "0.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["first_paint_s"] > 0 and report["projects"] >= 1
    assert isinstance(report["device"], str) and report["device"]
