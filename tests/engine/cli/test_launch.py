"""The engine's child-process command, from source and from the PyInstaller bundle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.cli.launch import engine_command


def test_from_source_runs_this_python_and_the_cli():
    argv = engine_command("diagnostics", "--help")
    assert argv[:3] == [sys.executable, "-m", "engine.cli"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "diagnostics" in done.stdout


def test_in_the_bundle_runs_the_engine_program_next_to_the_app(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "whetstone" / "whetstone"))
    program, *args = engine_command("train", "--output", "run")
    assert Path(program) == tmp_path / "whetstone" / (
        "whetstone-engine.exe" if sys.platform == "win32" else "whetstone-engine"
    )
    assert args == ["train", "--output", "run"]


def test_compiler_caches_stay_in_our_data_folder_unless_the_user_chose_one(tmp_path):
    import os

    code = (
        "import os, engine; print(os.environ['TORCHINDUCTOR_CACHE_DIR']); "
        "print(os.environ['TRITON_CACHE_DIR'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}
    env["WHETSTONE_HOME"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [str(tmp_path / "cache" / "torchinductor"), str(tmp_path / "cache" / "triton")]
    env["TRITON_CACHE_DIR"] = "/elsewhere"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split()[1] == "/elsewhere"
