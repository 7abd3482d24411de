"""How fast the window appears and how long the UI thread ever stops answering.

Prints figures, asserts nothing. Three measurements, each in a fresh process:
  startup  `whetstone --report-startup`: first paint (from process start, measured outside
           and inside) and the longest event-loop stall in the first seconds, which include
           the first-start demo project, the workspace scan and the device probe process.
  scan     the model library dialog scanning a fake Hugging Face cache of N model folders
           (real config.json, tokenizer files and safetensors headers), stall measured by a
           10 ms heartbeat on the UI thread.
Run: .venv/bin/python benchmarks/app_responsiveness.py [--models 200] (needs a display or
QT_QPA_PLATFORM=offscreen).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure_startup(home: Path, seconds: float) -> dict:
    env = dict(os.environ, WHETSTONE_HOME=str(home), XDG_CONFIG_HOME=str(home / "config"))
    start, spawned = time.perf_counter(), time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.main", "--report-startup", "--report-after", str(seconds)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    proc.wait(timeout=60)
    report = json.loads(line)
    report["first_paint_since_spawn_s"] = round(report.pop("first_paint_wall") - spawned, 3)
    report["process_to_exit_s"] = round(time.perf_counter() - start, 2)
    return report


def fake_model(folder: Path, n_layers: int) -> None:
    """A model folder whose files look real to the library (weights are headers plus zeros)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 4096}
        )
    )
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (folder / "tokenizer.json").write_text("{}")
    header, offset = {}, 0
    for i in range(n_layers):
        for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
            size = 64 * 64 * 2
            header[f"model.layers.{i}.self_attn.{name}.weight"] = {
                "dtype": "BF16",
                "shape": [64, 64],
                "data_offsets": [offset, offset + size],
            }
            offset += size
    blob = json.dumps(header).encode()
    with open(folder / "model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(blob)) + blob)
        handle.truncate(8 + len(blob) + offset)  # sparse: no real weight bytes are written


def measure_scan(root: Path, n_models: int) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    cache = root / "hf-cache"
    for i in range(n_models):
        snap = cache / f"models--org--model-{i:04d}" / "snapshots" / "abc123"
        fake_model(snap, n_layers=32)
        (cache / f"models--org--model-{i:04d}" / "refs").mkdir()
        (cache / f"models--org--model-{i:04d}" / "refs" / "main").write_text("abc123")
    os.environ["HF_HUB_CACHE"] = str(cache)
    os.environ["WHETSTONE_HOME"] = str(root / "home")

    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from app.infra.stall_monitor import StallMonitor
    from app.infra.tasks import TaskRunner
    from app.library.dialog import ModelLibraryDialog
    from engine.models.library import ModelLibrary

    _app = QApplication.instance() or QApplication([])  # keep a reference for the whole measurement
    runner = TaskRunner()
    monitor = StallMonitor()
    monitor.start()
    start = time.perf_counter()
    dialog = ModelLibraryDialog(ModelLibrary(root / "home"), runner)
    loop = QEventLoop()
    dialog.changed.connect(loop.quit)  # the scan's result arrives through the event loop
    dialog.show()
    loop.exec()
    elapsed = time.perf_counter() - start
    monitor.stop()
    return {
        "models": dialog.table_model.rowCount(),
        "scan_s": round(elapsed, 2),
        "max_stall_ms": round(monitor.max_stall_ms, 1),
        "heartbeats": monitor.beats,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="how long to watch for stalls after start-up"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(args.runs):
            label = "first start (new workspace)" if i == 0 else "later start"
            print(f"startup, {label}: {json.dumps(measure_startup(tmp / 'start', args.seconds))}")
        print(f"model scan: {json.dumps(measure_scan(tmp / 'scan', args.models))}")


if __name__ == "__main__":
    main()
