"""GPU training throughput and memory: the engine vs a plain transformers Trainer + peft (and unsloth).

Llama-shaped models with the dimensions of Qwen2.5-0.5B, Qwen2.5-1.5B and Llama-3-8B and random
weights (written once as a bf16 folder, nothing downloaded), 4-bit NF4 + LoRA r16 on every linear
layer, varied-length chats made in code. Every side trains the same folder, data, batch, max length
and steps in its own process and reports non-padding tokens/s (first steps left out as warm-up),
peak CUDA memory allocated and reserved, and the longest max length that trains at batch 1 (doubling
then bisecting, out-of-memory caught). A second table sets the engine's memory estimate beside every
peak the engine side measured (the run, and each length the search tried), to calibrate it.
unsloth is a third column where it is importable (this script never installs it). The time budget
keeps the whole run under 8 minutes on one GPU.

    .venv/bin/python benchmarks/gpu_throughput.py [--shapes 0.5b,1.5b,8b] [--steps N] [--out DIR]
    .venv/bin/python benchmarks/gpu_throughput.py --smoke --out DIR   # tiny model on the CPU, < 60 s
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

from gpu_report import calibration, calibration_table, params_text, ratios, table  # noqa: E402
from gpu_shapes import SHAPES, SMOKE, Shape, build_model_folder, make_chats  # noqa: E402

SETTINGS = {"rank": 16, "alpha": 32, "learning_rate": 2e-4, "seed": 0, "warmup": 2}
GPU = {"batch": 4, "max_length": 1024, "rows": 256, "search": (2048, 131072, 256, 2, 2)}
CPU_SMOKE = {"batch": 2, "max_length": 64, "rows": 16, "search": (64, 128, 8, 1, 0)}
# (start, cap, granule, probe steps, bisect rounds) of the longest-max-length search


def engine_config(path: Path, model: Path, data: Path, steps: int, run: dict) -> None:
    """The config.toml the engine side trains from: the engine's defaults plus the shared settings."""
    from engine.config import RunConfig, config_to_toml

    config = RunConfig().with_overrides(
        {
            "model.path": str(model),
            "data.path": str(data),
            "data.max_length": run["max_length"],
            "data.validation_ratio": 0.0,  # no evaluation pauses: the baseline has none
            "lora.rank": SETTINGS["rank"],
            "lora.alpha": float(SETTINGS["alpha"]),
            "lora.dropout": 0.0,
            "training.max_steps": steps,
            "training.batch_size": run["batch"],
            "training.save_every": 10**6,
            "training.learning_rate": SETTINGS["learning_rate"],
            "training.seed": SETTINGS["seed"],
            **run.get("engine_settings", {}),
        }
    )
    path.write_text(config_to_toml(config))


def engine_settings(pairs: list[str]) -> dict:
    """--engine-setting KEY=VALUE pairs as config overrides (VALUE in TOML: 'text', true, 3)."""
    import tomllib

    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"{pair!r}: write group.key=value, e.g. training.attention='flex_attention'")
        try:
            settings[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise ValueError(f"{pair!r}: the value is not TOML ('text', true, 3)") from None
    return settings


def run_child(args: list[str], timeout: float) -> tuple[dict | None, str]:
    """Run `gpu_throughput.py --child ...`; its last RESULT line (a killed side keeps what it printed)."""
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=max(timeout, 30))
        stdout, stderr, failed = proc.stdout, proc.stderr, proc.returncode != 0
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr, failed = f"killed after {timeout:.0f} s (time budget)", True
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    result = json.loads(lines[-1][7:]) if lines else None
    tail = [ln for ln in (stderr or "").strip().splitlines() if ln.strip()]
    problem = (tail[-1] if tail else "failed without output") if failed else ""
    problem = problem.removeprefix("error: ")
    return result, problem


class Budget:
    """Share the remaining time among the sides still to run, in proportion to their weights."""

    def __init__(self, seconds: float, weights: list[float]) -> None:
        self.start = time.time()
        self.end = self.start + seconds
        self.weights = list(weights)

    def elapsed(self) -> float:
        return time.time() - self.start

    def skip(self, count: int) -> None:
        del self.weights[:count]

    def next_share(self) -> float:
        weight = self.weights.pop(0)
        return max(self.end - time.time(), 0.0) * weight / (weight + sum(self.weights))


def log(budget: Budget, message: str) -> None:
    print(f"[{budget.elapsed():5.0f} s] {message}", file=sys.stderr, flush=True)


def run_shape(shape: Shape, steps: int, run: dict, sides: list[str], work: Path, models: Path, budget):
    """Build (or reuse) the shape's model folder, then every side in turn."""
    folder = models / f"llama-{shape.name}"
    if run["smoke"]:
        info = build_model_folder(shape, folder, "cpu")
    else:  # in a child, so this process never holds GPU memory
        # Within what is left of the budget: on a lent machine the whole run must end in time.
        left = max(budget.end - time.time(), 60)
        info, problem = run_child(["--child", "build", "--shape", shape.name, "--folder", str(folder)], left)
        if info is None:  # e.g. too little disk for the 8B weights: the other shapes still count
            log(budget, f"{shape.name}: building the model failed: {problem}")
            budget.skip(len(sides))
            return {"parameters": None, "like": shape.like, "sides": {}, "ratios": {}, "problem": problem}
    log(budget, f"{shape.name}: {params_text(info['parameters'])} parameters in {folder}")
    data = work / f"chats-{shape.name}.jsonl"
    make_chats(data, max(run["rows"], steps * run["batch"]), run["max_length"], SETTINGS["seed"])
    engine_config(work / f"config-{shape.name}.toml", folder, data, steps, run)
    start, cap, granule, probe_steps, bisect = run["search"]
    results: dict = {}
    for side in sides:
        share = budget.next_share()
        if share < 20:  # too little left to load a model: say so instead of overrunning the budget
            results[side] = {"problem": "skipped: the time budget is spent"}
            log(budget, f"{shape.name} {side}: skipped, the time budget is spent")
            continue
        spec = {
            **SETTINGS,
            "model": str(folder),
            "data": str(data),
            "config": str(work / f"config-{shape.name}.toml"),
            "work": str(work / shape.name),
            "steps": steps,
            "batch": run["batch"],
            "max_length": run["max_length"],
            "token_range": info["tokenizer_size"],
            "search": {
                "start": start,
                "cap": cap,
                "granule": granule,
                "probe_steps": probe_steps,
                "bisect": bisect,
                "deadline": time.time() + share - 10,
            },
        }
        spec_file = work / f"spec-{shape.name}-{side}.json"
        spec_file.write_text(json.dumps(spec))
        result, problem = run_child(["--child", side, "--spec", str(spec_file)], share + 60)
        results[side] = result or {}
        if problem:
            results[side]["problem"] = problem
        tps = results[side].get("tokens_per_second")
        log(
            budget,
            f"{shape.name} {side}: "
            + (f"{tps:.0f} tokens/s" if tps else "no result")
            + (f" ({problem})" if problem else ""),
        )
    return {"parameters": info["parameters"], "like": shape.like, "sides": results, "ratios": ratios(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="0.5b,1.5b,8b", help="comma-separated: " + ", ".join(SHAPES))
    parser.add_argument("--steps", type=int, help="optimizer steps per side (default: per shape)")
    parser.add_argument("--out", help="folder for gpu_throughput.json (default: print only)")
    parser.add_argument("--smoke", action="store_true", help="a tiny model on the CPU: checks the script")
    parser.add_argument("--budget", type=float, default=450, help="seconds for the whole run (default 450)")
    parser.add_argument("--models-dir", help="keep the random-weight model folders here and reuse them")
    parser.add_argument(
        "--engine-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config setting for the engine side, TOML value (e.g. training.attention='flex_attention')",
    )
    parser.add_argument("--child", choices=["build", "engine", "baseline", "unsloth"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "build":
        info = build_model_folder(SHAPES[args.shape], Path(args.folder), "cuda")
        print("RESULT " + json.dumps(info), flush=True)
        return 0
    if args.child:
        from gpu_sides import run_side

        run_side(args.child, args.spec)
        return 0

    names = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if args.smoke:
        names, shapes = ["smoke"], [SMOKE]
    elif unknown or not names:
        parser.exit(
            2, f"error: unknown shape {', '.join(unknown) or '(none)'}; choose from {', '.join(SHAPES)}\n"
        )
    else:
        shapes = [SHAPES[n] for n in names]
    if args.steps is not None and args.steps < 1:
        parser.exit(2, "error: --steps must be at least 1\n")
    import torch

    if not args.smoke and not torch.cuda.is_available():
        parser.exit(
            2,
            "error: no CUDA GPU here (torch.cuda.is_available() is false); run this on a "
            "machine with CUDA, or pass --smoke for the CPU smoke run\n",
        )
    run = {**(CPU_SMOKE if args.smoke else GPU), "smoke": args.smoke}
    try:
        run["engine_settings"] = engine_settings(args.engine_setting)
    except ValueError as exc:
        parser.exit(2, f"error: --engine-setting {exc}\n")
    sides = ["engine", "baseline"]
    if not args.smoke and importlib.util.find_spec("unsloth") is not None:
        sides.append("unsloth")
    budget = Budget(args.budget, [s.weight for s in shapes for _ in sides])
    if args.smoke:
        unsloth = "skipped: the smoke run is on the CPU"
    else:
        unsloth = "ran" if "unsloth" in sides else "not importable here (never installed by this script)"
    results: dict = {}

    def report_so_far() -> dict:
        report = {
            "settings": {**SETTINGS, **{k: v for k, v in run.items() if k != "search"}},
            "search": dict(
                zip(("start", "cap", "granule", "probe_steps", "bisect"), run["search"], strict=True)
            ),
            "sides": sides,
            "unsloth": unsloth,
            "torch": torch.__version__,
            "shapes": results,
            "shape_dims": {s.name: asdict(s) for s in shapes},
            "elapsed_s": round(budget.elapsed(), 1),
            "finished": len(results) == len(shapes),
        }
        report["calibration"] = calibration(report)
        if args.out:  # after every shape: a run killed from outside keeps the shapes it finished
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "gpu_throughput.json").write_text(json.dumps(report, indent=2))
        return report

    with tempfile.TemporaryDirectory(prefix="whetstone-gpu-bench-") as tmp:
        models = Path(args.models_dir) if args.models_dir else Path(tmp) / "models"
        for shape in shapes:
            steps = args.steps or shape.steps
            results[shape.name] = run_shape(shape, steps, run, sides, Path(tmp), models, budget)
            report_so_far()
            if not args.models_dir:  # 16 GB for the 8B shape: gone before the next one is built
                shutil.rmtree(models / f"llama-{shape.name}", ignore_errors=True)
    report = report_so_far()
    print(table(report))
    kind = next((s.get("memory_kind") for r in results.values() for s in r["sides"].values()), "cuda")
    if report["calibration"]:
        print()
        print(calibration_table(report["calibration"], kind))
    if args.smoke:
        print(
            "note: the smoke run trains a tiny model on the CPU to check the script; its figures mean nothing"
        )
    print(f"elapsed {report['elapsed_s']:.0f} s")
    if args.out:
        print(f"results: {Path(args.out) / 'gpu_throughput.json'}")
    complete = all(
        s["sides"] and all(r.get("tokens_per_second") and not r.get("problem") for r in s["sides"].values())
        for s in results.values()
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
