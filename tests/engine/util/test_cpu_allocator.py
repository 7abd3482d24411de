"""tcmalloc for the engine's processes on a Linux machine without a GPU (engine.util.cpu_allocator)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.launch import engine_environment
from engine.util import cpu_allocator


@pytest.fixture
def fake_system(tmp_path, monkeypatch) -> Path:
    """A library folder holding tcmalloc, and no NVIDIA driver."""
    libs = tmp_path / "lib"
    libs.mkdir()
    (libs / "libtcmalloc_minimal.so.4").write_bytes(b"")
    monkeypatch.setattr(cpu_allocator, "_library_dirs", lambda: [tmp_path / "empty", libs])
    monkeypatch.setattr(cpu_allocator, "NVIDIA_DRIVER", tmp_path / "no-driver")
    monkeypatch.setattr(sys, "platform", "linux")
    return libs / "libtcmalloc_minimal.so.4"


def test_tcmalloc_goes_first_in_ld_preload_and_only_once(fake_system):
    assert cpu_allocator.with_tcmalloc({})["LD_PRELOAD"] == str(fake_system)
    env = cpu_allocator.with_tcmalloc({"LD_PRELOAD": "/opt/other.so"})
    assert env["LD_PRELOAD"] == f"{fake_system}:/opt/other.so"
    assert cpu_allocator.with_tcmalloc(env) == env  # already there: unchanged, so no restart loop


@pytest.mark.parametrize("case", ["opted-out", "nvidia-driver", "no-library", "not-linux"])
def test_the_system_allocator_stays_where_tcmalloc_is_not_wanted_or_not_there(fake_system, monkeypatch, case):
    env = {"PATH": "/bin"}
    if case == "opted-out":
        env[cpu_allocator.OPT_OUT] = "system"
    elif case == "nvidia-driver":  # a GPU machine: unmeasured there, and the GPU holds the memory
        fake_system.with_name("version").write_text("NVRM version: 580")
        monkeypatch.setattr(cpu_allocator, "NVIDIA_DRIVER", fake_system.with_name("version"))
    elif case == "no-library":
        fake_system.unlink()
    else:
        monkeypatch.setattr(sys, "platform", "darwin")
    assert cpu_allocator.with_tcmalloc(env) == env


def test_the_apps_engine_children_start_unbuffered_and_with_tcmalloc(fake_system):
    env = engine_environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "PYTHONUNBUFFERED": "1", "LD_PRELOAD": str(fake_system)}


@pytest.mark.skipif(cpu_allocator.tcmalloc_library() is None, reason="no tcmalloc on this machine")
def test_a_command_from_a_shell_starts_itself_again_under_tcmalloc_once():
    # The same start as `whetstone-engine train ...`: run_as_program's restart, then the command.
    code = (
        "import sys; sys.argv = ['whetstone-engine', 'train', '--help']\n"
        "from engine.cli.main import _restart_with_tcmalloc\n"
        "print('started', flush=True)\n"
        "_restart_with_tcmalloc()\n"
        "from engine.util.cpu_allocator import active_allocator\n"
        "print(active_allocator())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", cpu_allocator.OPT_OUT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["started", "started", "tcmalloc"]  # once restarted, then not again

    # A light command (no torch) is not restarted.
    light = code.replace("'train', '--help'", "'runs', '--help'")
    proc = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, timeout=120, env=env)
    assert proc.stdout.split() == ["started", "system"]
