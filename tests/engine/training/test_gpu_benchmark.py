"""benchmarks/gpu_throughput.py and scripts/gpu-check: the CPU smoke run, the refusals without CUDA,
and, on a CUDA machine, the 0.5B shape for a few steps on each side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "benchmarks" / "gpu_throughput.py"
GPU_CHECK = ROOT / "scripts" / "gpu-check"
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")


def run(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}  # scripts/gpu-check runs this interpreter
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def check_sides(report: dict, shape: str) -> dict:
    """Both columns trained and measured, and the ratios are the ratios of their figures."""
    sides = report["shapes"][shape]["sides"]
    for side in ("engine", "baseline"):
        result = sides[side]
        assert result["state"] == "done" and "problem" not in result, result
        assert result["tokens_per_second"] > 0 and result["tokens"] > 0 and result["peak_allocated_mb"] > 0
        assert result["search"]["probes"] and result["search"]["longest"] >= report["search"]["start"]
    ratio = report["shapes"][shape]["ratios"]["engine/baseline"]
    expected = sides["engine"]["tokens_per_second"] / sides["baseline"]["tokens_per_second"]
    assert ratio["tokens_per_second"] == pytest.approx(expected, rel=1e-2)
    memory = sides["engine"]["peak_allocated_mb"] / sides["baseline"]["peak_allocated_mb"]
    assert ratio["peak_allocated_mb"] == pytest.approx(memory, rel=1e-2)
    return sides


@pytest.mark.slow
def test_gpu_check_smoke_runs_the_benchmark_on_the_cpu_and_writes_one_table_and_json(tmp_path):
    out = tmp_path / "results"
    proc = run([str(GPU_CHECK), "--smoke", str(out)], timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("shape ") and "tokens/s" in line]
    assert len(table) == 1 and "longest@b1" in table[0]
    lines = proc.stdout.splitlines()
    first = lines[lines.index(table[0]) + 1 :]
    first = first[: first.index("")] if "" in first else first  # a blank line before the next table
    rows = [line.split() for line in first if line.startswith("smoke ") and " MiB " in line]
    assert [row[2] for row in rows] == ["engine", "baseline"]
    assert f"results in {out}/" in proc.stdout and "elapsed" in proc.stdout
    report = json.loads((out / "gpu_throughput.json").read_text())
    assert report["settings"]["smoke"] is True and report["sides"] == ["engine", "baseline"]
    sides = check_sides(report, "smoke")
    assert sides["engine"]["memory_kind"] == "process_rss"  # no CUDA here: the CPU's peak RSS
    # The CPU never runs out of memory in the smoke: the search stops at its cap.
    assert sides["baseline"]["search"]["bound"] == "cap"
    assert sides["baseline"]["search"]["longest"] == report["search"]["cap"]
    assert (out / "benchmark.log").read_text().count("shape ") >= 1
    # The calibration table: the engine's estimate beside the engine side's measured peak.
    [run_row] = report["calibration"]  # the CPU has no per-probe peak: the training run only
    assert run_row["estimate_mb"] == pytest.approx(sides["engine"]["estimate_mb"])
    assert run_row["measured_mb"] == sides["engine"]["peak_allocated_mb"]
    assert run_row["ratio"] == pytest.approx(run_row["estimate_mb"] / run_row["measured_mb"], rel=1e-2)
    assert "memory estimate vs measured peak (process RSS)" in proc.stdout
    # What the engine ran with is printed under the table (on the CPU: no Liger, SDPA, padded).
    choices = sides["engine"]["choices"]
    assert (choices["fused_kernels"], choices["attention"], choices["padding_free"]) == (False, "sdpa", False)
    assert "  engine on smoke: attention sdpa, padding_free False, fused_kernels False" in proc.stdout


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([str(GPU_CHECK)], marks=no_cuda, id="gpu-check"),
        pytest.param([sys.executable, str(BENCH), "--shapes", "0.5b"], marks=no_cuda, id="benchmark"),
        pytest.param([sys.executable, str(BENCH), "--shapes", "3b"], id="benchmark-bad-shape"),
    ],
)
def test_refuses_in_one_error_line_and_writes_nothing(command, tmp_path):
    out = tmp_path / "results"
    flag = [str(out)] if command[0] == str(GPU_CHECK) else ["--out", str(out)]
    proc = run(command + flag, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "CUDA" in lines[0] or "unknown shape 3b" in lines[0]
    assert not out.exists() and proc.stdout == ""


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_half_billion_shape_runs_each_side(tmp_path):
    proc = run(
        [
            sys.executable,
            str(BENCH),
            "--shapes",
            "0.5b",
            "--steps",
            "4",
            "--budget",
            "150",
            "--out",
            str(tmp_path),
        ],
        timeout=400,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_throughput.json").read_text())
    sides = check_sides(report, "0.5b")
    for result in sides.values():
        assert result["memory_kind"] == "cuda" and result["peak_reserved_mb"] >= result["peak_allocated_mb"]
    assert 0.45e9 < report["shapes"]["0.5b"]["parameters"] < 0.55e9
    # Every length the engine's search tried has its estimate; those that fitted, their own peak.
    probes = sides["engine"]["search"]["probes"]
    assert all(p[4] > 0 and (p[3] > 0 if p[1] else True) for p in probes), probes
    assert len(report["calibration"]) == 1 + len(probes)
    assert report["elapsed_s"] < 150 + 120


def test_calibration_sets_the_estimate_beside_each_measured_peak_and_flags_what_is_off():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_report import calibration, calibration_table

    engine = {
        "peak_allocated_mb": 1000.0,
        "estimate_mb": 1100.0,  # 10 % over: within the tolerance
        "device_memory_mb": 80000.0,
        "memory_kind": "cuda",
        "search": {
            "probes": [
                [2048, True, 1.0, 2000.0, 2600.0],  # 30 % over: off
                [4096, False, 1.0, None, 70000.0],  # out of memory, yet the estimate says it fits
                [8192, False, 1.0, None, 90000.0],  # out of memory, and the estimate agrees
            ]
        },
    }
    report = {"settings": {"batch": 4, "max_length": 1024}, "shapes": {"8b": {"sides": {"engine": engine}}}}
    rows = calibration(report)
    assert [(r["batch"], r["max_length"]) for r in rows] == [(4, 1024), (1, 2048), (1, 4096), (1, 8192)]
    assert (rows[0]["ratio"], rows[0]["off"]) == (1.1, False)
    assert (rows[1]["ratio"], rows[1]["off"]) == (1.3, True)
    assert rows[2]["says_fits"] is True and rows[3]["says_fits"] is False
    text = calibration_table(rows, "cuda").splitlines()
    assert "CUDA allocated" in text[0]
    assert text[3].endswith("off") and text[4].endswith("estimate said it fits")
    assert text[5].split()[-1] == "-"  # the estimate agreed: nothing to flag
    assert calibration_table([], "cuda") == ""


def test_a_spent_budget_skips_the_sides_and_says_so_instead_of_overrunning(tmp_path):
    proc = run([sys.executable, str(BENCH), "--smoke", "--budget", "5", "--out", str(tmp_path)], timeout=120)
    assert proc.returncode == 1  # nothing measured is not a result
    report = json.loads((tmp_path / "gpu_throughput.json").read_text())
    sides = report["shapes"]["smoke"]["sides"]
    assert {side: r["problem"] for side, r in sides.items()} == {
        "engine": "skipped: the time budget is spent",
        "baseline": "skipped: the time budget is spent",
    }
    assert report["finished"] is True and report["elapsed_s"] < 60
    assert "! smoke engine: skipped: the time budget is spent" in proc.stdout


@pytest.mark.slow
def test_gpu_check_leaves_the_benchmark_out_when_its_time_limit_leaves_too_little(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [str(GPU_CHECK), "--smoke", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable, "GPU_CHECK_SECONDS": "100"},
    )
    assert proc.returncode == 1
    assert "benchmark not run: only" in (out / "benchmark.log").read_text()
    assert "FAILED: benchmark" in proc.stdout and (out / "environment.txt").exists()
    assert not (out / "gpu_throughput.json").exists()
