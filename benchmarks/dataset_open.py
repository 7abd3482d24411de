"""Opening a million-row JSONL in the dataset editor: time, memory, scrolling.

    python benchmarks/dataset_open.py [--rows 1000000] [--file F.jsonl] [--no-baseline]

Each measurement runs in a fresh child process (so peak memory is its own):
- editor: `open_store` (the Arrow row store), then the Data tab's table model and view shown
  offscreen; time to the first painted table, resident and peak memory, then 300 jumps to
  random rows, each painted synchronously (median and worst paint), and memory after them;
- page: the real Data tab opening it in a project, with the UI thread's longest stall while it
  opens, while the background review runs (--review-seconds of it), during an edit and a search;
- baseline: what an editor holding every row as a Python object does, `json.loads` per line.
The generated file is cached under .cache/bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = (
    "the a model learns from data quickly slowly answer question river mountain code python "
    "train token write explain why how small large"
).split()


def make_file(path: Path, rows: int) -> None:
    rng = random.Random(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for _ in range(rows):
            q = " ".join(rng.choices(WORDS, k=rng.randint(4, 20)))
            a = " ".join(rng.choices(WORDS, k=rng.randint(5, 40)))
            row = {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            handle.write(json.dumps(row) + "\n")
    tmp.replace(path)


def peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def editor(path: Path) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from app.data.document import DatasetDocument
    from app.data.table_model import DatasetTableModel
    from app.data.table_view import DatasetView
    from engine.data.files import _count_lines_if_all_objects
    from engine.data.row_store import open_store

    base = rss_mib()
    start = time.perf_counter()
    store, shape = open_store(path)
    opened = time.perf_counter() - start
    t = time.perf_counter()
    _count_lines_if_all_objects(path)  # the line check alone, for the breakdown
    line_check = time.perf_counter() - t
    document = DatasetDocument(path, store, shape)
    view = DatasetView()
    view.resize(1000, 700)
    view.set_model(DatasetTableModel(document))
    view.show()
    view.table.viewport().repaint()
    app.processEvents()
    shown = time.perf_counter() - start
    after_open = rss_mib()
    rng = random.Random(1)
    paints = []
    for _ in range(300):
        row = rng.randrange(len(store))
        t = time.perf_counter()
        view.table.scrollTo(view.model.index(row, 0))
        view.table.viewport().repaint()
        paints.append(time.perf_counter() - t)
    for _ in range(100):  # and a steady scroll, a page at a time
        t = time.perf_counter()
        bar = view.table.verticalScrollBar()
        bar.setValue(bar.value() + bar.pageStep())
        view.table.viewport().repaint()
        paints.append(time.perf_counter() - t)
    paints.sort()
    # Qt's own cost for the same paint: a plain in-memory model holding the same texts.
    from PySide6.QtGui import QStandardItem, QStandardItemModel

    plain = QStandardItemModel(400, len(view.model.headers))
    for r in range(400):
        for c in range(len(view.model.headers)):
            plain.setItem(r, c, QStandardItem(str(view.model.data(view.model.index(r, c)) or "")))
    view.table.setModel(plain)
    plain_paints = []
    for _ in range(100):
        t = time.perf_counter()
        view.table.scrollTo(plain.index(rng.randrange(400), 0))
        view.table.viewport().repaint()
        plain_paints.append(time.perf_counter() - t)
    plain_paints.sort()
    return {
        "line_check_s": line_check,
        "plain_paint_median_ms": plain_paints[len(plain_paints) // 2] * 1000,
        "rows": len(store),
        "open_s": opened,
        "first_paint_s": shown,
        "rss_before_mib": base,
        "rss_after_open_mib": after_open,
        "peak_mib": peak_mib(),
        "rss_after_scroll_mib": rss_mib(),
        "paint_median_ms": paints[len(paints) // 2] * 1000,
        "paint_max_ms": paints[-1] * 1000,
    }


def page(path: Path, review_seconds: float = 30) -> dict:
    """The real Data tab on a project holding the file: the UI thread's longest stall meanwhile."""
    import tempfile

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="whetstone-bench-"))
    os.environ["WHETSTONE_HOME"] = str(home)
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from app.data.page import DataPage
    from app.infra.stall_monitor import StallMonitor
    from engine.workspace import Workspace

    workspace = Workspace(home)
    project = workspace.create_project("Bench")
    (project / "datasets" / path.name).symlink_to(path.resolve())
    data_page = DataPage()
    data_page.resize(1300, 850)
    data_page.show()
    monitor = StallMonitor()
    monitor.start()

    def wait(condition, seconds: float) -> float:
        start = time.perf_counter()
        while not condition() and time.perf_counter() - start < seconds:
            app.processEvents()
            time.sleep(0.002)
        return time.perf_counter() - start

    start = time.perf_counter()
    data_page.show_project(workspace.summarize(project))
    wait(lambda: data_page.table_model is not None and data_page.view.model.rowCount() > 0, 60)
    shown, open_stall = time.perf_counter() - start, monitor.max_stall_ms
    monitor.reset()
    review = wait(lambda: not data_page.reviewing(), review_seconds)  # the background review
    review_stall = monitor.max_stall_ms
    monitor.reset()
    data_page.view.select_id(500_000)
    record = data_page.document.store.record(500_000)
    record["messages"][-1]["content"] = "an edit"
    t = time.perf_counter()
    data_page.document.set_records([500_000], [record], "edit")
    edit = time.perf_counter() - t
    data_page.toolbar.find.setText("river mountain")
    t = time.perf_counter()
    wait(lambda: data_page._text_mask is not None, 30)
    search = time.perf_counter() - t
    wait(lambda: False, 0.3)
    after_stall = monitor.max_stall_ms
    data_page.document.discard_changes()
    return {
        "shown_s": shown,
        "open_stall_ms": open_stall,
        "review_s": review,
        "review_done": not data_page.reviewing(),
        "review_stall_ms": review_stall,
        "edit_ms": edit * 1000,
        "search_s": search,
        "edit_search_stall_ms": after_stall,
        "shown_rows": data_page.view.model.rowCount(),
    }


def baseline(path: Path) -> dict:
    base = rss_mib()
    start = time.perf_counter()
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return {
        "rows": len(rows),
        "open_s": time.perf_counter() - start,
        "rss_before_mib": base,
        "peak_mib": peak_mib(),
    }


def child(kind: str, path: Path, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--file", str(path), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--review-seconds",
        type=float,
        default=30,
        help="how long to let the Data tab's background review run (default 30)",
    )
    parser.add_argument("--child", choices=("editor", "page", "baseline"))
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO))
        if args.child == "page":
            print(json.dumps(page(args.file, args.review_seconds)))
        else:
            print(json.dumps({"editor": editor, "baseline": baseline}[args.child](args.file)))
        return
    path = args.file or REPO / ".cache" / "bench" / f"chat-{args.rows}.jsonl"
    if not path.exists():
        print(f"writing {args.rows:,} rows to {path} …", flush=True)
        make_file(path, args.rows)
    size = path.stat().st_size / 2**20
    print(f"file: {path} ({size:,.0f} MiB)")
    e = child("editor", path)
    print(
        f"editor: {e['rows']:,} rows; open {e['open_s']:.2f} s "
        f"(of which the line check {e['line_check_s']:.2f} s, "
        f"the rest pyarrow's JSON parse), first painted table {e['first_paint_s']:.2f} s"
    )
    print(
        f"  memory: {e['rss_before_mib']:.0f} MiB before, {e['rss_after_open_mib']:.0f} MiB after open "
        f"(+{e['rss_after_open_mib'] - e['rss_before_mib']:.0f} MiB, "
        f"{(e['rss_after_open_mib'] - e['rss_before_mib']) / size:.2f}x "
        f"the file), peak {e['peak_mib']:.0f} MiB"
    )
    print(
        f"  scrolling (300 random jumps + 100 pages): paint median {e['paint_median_ms']:.1f} ms, "
        f"worst {e['paint_max_ms']:.1f} ms (a plain 400-row QStandardItemModel in the same view: "
        f"{e['plain_paint_median_ms']:.1f} ms); memory after {e['rss_after_scroll_mib']:.0f} MiB"
    )
    p = child("page", path, "--review-seconds", str(args.review_seconds))
    print(
        f"Data tab: table shown {p['shown_s']:.2f} s after choosing the project, "
        f"longest UI stall meanwhile {p['open_stall_ms']:.0f} ms; background review "
        f"{'done in' if p['review_done'] else 'still running after'} "
        f"{p['review_s']:.1f} s, longest stall {p['review_stall_ms']:.0f} ms; an edit {p['edit_ms']:.1f} ms; "
        f"search of every row {p['search_s']:.2f} s ({p['shown_rows']:,} rows match); "
        f"longest stall over edit and search {p['edit_search_stall_ms']:.0f} ms"
    )
    if not args.no_baseline:
        b = child("baseline", path)
        print(
            f"baseline (json.loads every line into Python objects): {b['open_s']:.2f} s, "
            f"peak {b['peak_mib']:.0f} MiB (+{b['peak_mib'] - b['rss_before_mib']:.0f} MiB)"
        )
        print(
            f"editor vs baseline: {b['open_s'] / e['open_s']:.1f}x faster to open, "
            f"{(b['peak_mib'] - b['rss_before_mib']) / max(e['peak_mib'] - e['rss_before_mib'], 1):.1f}x "
            "less added memory"
        )


if __name__ == "__main__":
    main()
