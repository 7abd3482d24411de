"""Whether Triton can build kernels here: the package, a C compiler and Python's headers."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import engine.util.triton_build as triton_build
from engine.util.triton_build import triton_build_problem

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with triton, a gcc on PATH and Python.h: each test takes one of them away."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "triton" else find_spec(name, *a)
    )
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "gcc").write_text("#!/bin/sh\n")
    (tools / "gcc").chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.delenv("CC", raising=False)
    include = tmp_path / "include"
    include.mkdir()
    (include / "Python.h").write_text("")
    monkeypatch.setattr(triton_build, "python_include_dir", lambda: include)
    monkeypatch.delattr(sys, "frozen", raising=False)
    triton_build_problem.cache_clear()
    yield tools, include
    triton_build_problem.cache_clear()


def test_with_a_compiler_and_the_headers_triton_can_build(machine):
    assert triton_build_problem() is None


def test_without_a_c_compiler_the_problem_says_what_to_install(machine):
    tools, _ = machine
    (tools / "gcc").unlink()
    problem = triton_build_problem()
    assert "a C compiler, and no gcc or clang is on PATH" in problem
    assert f"sudo apt-get install gcc python{VERSION}-dev" in problem


def test_a_compiler_named_in_cc_must_be_there(machine, monkeypatch):
    monkeypatch.setenv("CC", "/nowhere/cc")
    assert "CC='/nowhere/cc' names no program on PATH" in triton_build_problem()
    triton_build_problem.cache_clear()
    monkeypatch.setenv("CC", "gcc -O2")  # Triton calls $CC as one program name
    assert "CC='gcc -O2' names no program on PATH" in triton_build_problem()
    triton_build_problem.cache_clear()
    monkeypatch.setenv("CC", "gcc")
    assert triton_build_problem() is None


def test_without_python_h_the_problem_names_the_file(machine):
    _, include = machine
    (include / "Python.h").unlink()
    problem = triton_build_problem()
    assert f"{include / 'Python.h'} is missing" in problem and f"python{VERSION}-dev" in problem


def test_the_installed_app_cannot_build_and_says_so(machine, monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert "installed app carries no C compiler" in triton_build_problem()


def test_without_the_package_it_says_so(machine, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "triton" else find_spec(name, *a)
    )
    assert triton_build_problem() == "the triton package is not installed"


def test_triton_looks_for_python_h_where_this_python_keeps_it():
    # The real folder of this interpreter (a venv's is its base Python's): where python3.X-dev puts it.
    assert triton_build.python_include_dir().name == f"python{VERSION}"
