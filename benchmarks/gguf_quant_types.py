"""What each GGUF type costs on a run: file size, export time, and the answers that survive rounding.

    .venv/bin/python benchmarks/gguf_quant_types.py RUN_DIR [QUANT[+imatrix] ...]

RUN_DIR is a finished run (e.g. `whetstone-engine demo --output RUN_DIR`). Each type is exported
through the real CLI (`whetstone-engine export RUN --gguf ... --quant Q [--imatrix]`, with its
after-export check) into a temporary folder; a `+imatrix` suffix adds --imatrix. Prints one table:
size, seconds for the whole export (merge, quantize, write) and for the check, the check's verdict,
and how many of the check's greedy answers are the same as the unrounded run's (the check's prompts
are the demo's two facts, then two general prompts).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_k_m+imatrix", "q4_0")


def export(run: Path, quant: str, folder: Path) -> dict:
    name, _, extra = quant.partition("+")
    out = folder / f"{quant.replace('+', '-')}.gguf"
    command = [sys.executable, "-m", "engine.cli.main", "export", str(run), "--gguf", str(out)]
    command += ["--quant", name]
    command += ["--imatrix"] if extra == "imatrix" else []
    command += ["--progress-json"]
    started = time.perf_counter()
    check_started = None
    report = None
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            event = json.loads(line)
            if "Checking" in str(event.get("message", "")) and check_started is None:
                check_started = time.perf_counter()
            report = event.get("check", report)
    ended = time.perf_counter()
    if child.returncode != 0 or report is None:
        return {"quant": quant, "error": f"exit {child.returncode}"}
    prompts = [p for p in report["prompts"] if p["writer_max_abs_logit_diff"] is not None]
    return {
        "quant": quant,
        "mib": out.stat().st_size / 2**20,
        "export_s": (check_started or ended) - started,
        "check_s": ended - (check_started or ended),
        "passed": report["passed"],
        "same": f"{sum(p['same_text'] for p in prompts)}/{len(prompts)}",
        "facts": " | ".join(p["exported_text"][:38].replace("\n", " ") for p in prompts[:2]),
    }


def main() -> None:
    run = Path(sys.argv[1]).resolve()
    quants = sys.argv[2:] or DEFAULT
    rows = []
    with tempfile.TemporaryDirectory(prefix="gguf-bench-") as tmp:
        for quant in quants:
            rows.append(export(run, quant, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'type':16} {'MiB':>7} {'export s':>9} {'check s':>8} {'check':>6} {'same':>5}  fact answers")
    for r in rows:
        if "error" in r:
            print(f"{r['quant']:16} {r['error']}")
            continue
        verdict = "pass" if r["passed"] else "FAIL"
        print(
            f"{r['quant']:16} {r['mib']:7.1f} {r['export_s']:9.1f} {r['check_s']:8.1f} {verdict:>6} "
            f"{r['same']:>5}  {r['facts']}"
        )


if __name__ == "__main__":
    main()
