"""The layering contracts hold (import-linter): Qt-free engine, engine layers, light runs, app layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_linter_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is not installed (pip install -e '.[test]')"
    proc = subprocess.run(
        [lint, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 broken" in proc.stdout and "Contracts: 4 kept" in proc.stdout


def test_run_state_reads_without_torch():
    """The browser and the CLI read run folders without paying for torch or transformers."""
    code = (
        "import engine.runs.state, engine.runs.history, sys; "
        "assert not {'torch', 'transformers'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
