#!/usr/bin/env python3
"""Smoke checks of an installed Whetstone (a wheelhouse venv or a bundle), with no network.

    python3 packaging/smoke_checks.py --label NAME --builder-python PY \\
        --engine ENGINE_PROGRAM --gui GUI_PROGRAM [--readonly-dir DIR ...] [--work DIR] [--allow-network]

Shared by packaging/smoke-wheelhouse and the bundle's smoke test; stdlib only; POSIX.
ENGINE_PROGRAM and GUI_PROGRAM are the installed `whetstone-engine` and `whetstone` programs.
In a fresh work folder, with a fresh HOME (WHETSTONE_HOME inside it, XDG_* unset, TMPDIR and
XDG_RUNTIME_DIR in the work folder) it:

  1. refuses to run when the network is reachable (run it under `unshare -n`), unless --allow-network;
  2. builds the tiny test model with --builder-python (tests/support/testkit/tiny_model.py; it needs torch and
     transformers: the installed environment's own python proves they were installed);
  3. trains it for 4 steps with ENGINE (adapter written, last status `done`) and runs `ENGINE diagnostics`;
  4. starts GUI with QT_QPA_PLATFORM=offscreen and --report-startup, and times its first window;
  5. kills every process it started (their children too, even detached ones: they carry a tag in
     their environment), then checks that the programs wrote nothing under HOME outside
     WHETSTONE_HOME and ~/.config/Whetstone*, nothing in the current folder, and nothing inside any
     --readonly-dir (paths, sizes and mtimes before and after: the install must stay untouched).

Prints a report with figures and writes it to WORK/report.json. Exit 0 when every check passed,
1 when one failed (each failure is named), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAG_VARIABLE = "WHETSTONE_SMOKE_TAG"
# Places under HOME (relative) where the programs may write, besides WHETSTONE_HOME.
ALLOWED_IN_HOME = (
    # Qt settings: QSettings("Whetstone", "Whetstone") -> Whetstone.conf (and Whetstone/)
    ".config/Whetstone",
)
NETWORK_PROBES = (("pypi.org", 443), ("1.1.1.1", 443), ("8.8.8.8", 53))


def stop(message: str) -> None:
    """A setup problem (not a failed check): one line, exit 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class Smoke:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.failures: list[str] = []
        self.warnings: list[str] = []
        self.report: dict = {"label": args.label, "passed": False, "figures": {}, "checks": {}}
        self.tag = uuid.uuid4().hex
        work = args.work or Path(tempfile.mkdtemp(prefix=f"whetstone-smoke-{args.label}-"))
        work = Path(work).resolve()
        if work.exists() and any(work.iterdir()):
            stop(f"--work {work} is not empty; give a new or empty folder")
        self.work = work
        self.home = work / "home"
        self.data = self.home / "whetstone-data"  # WHETSTONE_HOME
        self.cwd = work / "cwd"
        self.tmp = work / "tmp"
        self.logs = work / "logs"
        self.inputs = work / "inputs"
        for folder in (self.home, self.cwd, self.tmp, self.logs, self.inputs, work / "builder-home"):
            folder.mkdir(parents=True, exist_ok=True)
        self.runtime = work / "xdg-runtime"
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        self.report["work"] = str(work)

    # -- helpers -----------------------------------------------------------------------------------
    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"  FAIL {message}", flush=True)

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: nothing from the caller's Python, pip, HF or XDG settings leaks in."""
        keep = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "USER", "LOGNAME", "SYSTEMROOT", "PATHEXT")
        env = {key: os.environ[key] for key in keep if key in os.environ}
        venvs = [p for p in (os.environ.get("VIRTUAL_ENV"), str(REPO / ".venv")) if p]
        path = [
            entry
            for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if entry and not any(entry.startswith(v) for v in venvs)
        ]
        env.update(
            PATH=os.pathsep.join(path),
            HOME=str(self.home),
            WHETSTONE_HOME=str(self.data),
            TMPDIR=str(self.tmp),
            XDG_RUNTIME_DIR=str(self.runtime),
            **{TAG_VARIABLE: self.tag},
        )
        env.update(extra)
        return env

    def run(
        self,
        name: str,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> tuple[int | None, float, str]:
        """Run one program to its end; its output goes to logs/NAME.log.
        Returns (exit code, seconds, output)."""
        log = self.logs / f"{name}.log"
        started = time.monotonic()
        with open(log, "w", encoding="utf-8") as out:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            process = subprocess.Popen(
                argv,
                env=env or self.env(),
                cwd=cwd or self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                self.kill_group(process.pid)
        seconds = time.monotonic() - started
        output = log.read_text(encoding="utf-8", errors="replace")
        if code != 0:
            tail = "\n".join("      " + line for line in output.splitlines()[-25:])
            ended = f"timed out after {timeout:.0f} s" if code is None else f"exit {code}"
            print(f"  {name}: {ended}; last lines of {log}:\n{tail}", flush=True)
        return code, seconds, output

    @staticmethod
    def kill_group(pid: int) -> None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def tagged_processes(self) -> dict[int, str]:
        """Every live process started by us or by our children
        (the tag is inherited through the environment)."""
        found = {}
        needle = f"{TAG_VARIABLE}={self.tag}".encode()
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
            if not entry.name.isdigit():
                continue
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    found[int(entry.name)] = cmdline.strip()[:160]
            except OSError:
                continue
        return found

    def kill_leftovers(self, step: str) -> list[str]:
        """Kill every tagged process (TERM, then KILL); returns what was found."""
        found = self.tagged_processes()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.tagged_processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.tagged_processes():
                time.sleep(0.1)
        still = self.tagged_processes()
        if still:
            self.fail(f"after {step}: processes survive SIGKILL: {still}")
        return [f"{pid}: {cmd}" for pid, cmd in found.items()]

    # -- checks ---------------------------------------------------------------------------------------
    def check_network(self) -> None:
        print("Network:", flush=True)
        results = []
        for host, port in NETWORK_PROBES:
            try:
                with socket.create_connection((host, port), timeout=3):
                    results.append(f"{host}:{port} reachable")
                    reached = f"{host}:{port}"
                    break
            except OSError as error:
                results.append(f"{host}:{port}: {error.strerror or error}")
        else:
            reached = None
        self.report["checks"]["network"] = {"reachable": reached, "probes": results}
        if reached and not self.args.allow_network:
            stop(
                f"the network is reachable ({reached}); run these checks without network "
                "(e.g. `unshare -n python3 packaging/smoke_checks.py ...`) or pass --allow-network"
            )
        print(
            f"  {'reachable: ' + reached + ' (--allow-network)' if reached else 'unreachable'}: "
            f"{'; '.join(results)}",
            flush=True,
        )

    def build_tiny_model(self) -> tuple[Path, Path] | None:
        print("Tiny model (built with --builder-python):", flush=True)
        model, facts = self.inputs / "tiny-model", self.inputs / "facts.jsonl"
        code = (
            "import json, sys\n"
            f"sys.path.insert(0, {str(REPO / 'tests' / 'support')!r})\n"
            "from pathlib import Path\n"
            "import torch, transformers\n"
            "from testkit import tiny_model\n"
            f"model = Path({str(model)!r}); model.mkdir(parents=True, exist_ok=True)\n"
            "tiny_model.build(model)\n"
            f"tiny_model.write_jsonl(Path({str(facts)!r}), tiny_model.fact_rows())\n"
            "print(json.dumps({'torch': torch.__version__, 'transformers': transformers.__version__,"
            " 'python': sys.executable}))\n"
        )
        builder_home = self.work / "builder-home"
        (builder_home / "tmp").mkdir(exist_ok=True)
        env = self.env(
            HOME=str(builder_home),
            TMPDIR=str(builder_home / "tmp"),
            PYTHONDONTWRITEBYTECODE="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            HF_HUB_DISABLE_TELEMETRY="1",
        )
        env.pop("WHETSTONE_HOME")
        status, seconds, output = self.run(
            "build-tiny-model", [self.args.builder_python, "-c", code], timeout=600, env=env, cwd=self.inputs
        )
        if status != 0 or not (model / "config.json").is_file() or not facts.is_file():
            self.fail(
                f"building the tiny model with {self.args.builder_python} failed (exit {status}); "
                f"see {self.logs / 'build-tiny-model.log'}"
            )
            return None
        versions = next((json.loads(line) for line in output.splitlines() if line.startswith("{")), {})
        self.report["figures"]["tiny_model_build_s"] = round(seconds, 2)
        self.report["checks"]["builder"] = versions
        print(
            f"  built in {seconds:.1f} s with torch {versions.get('torch')}, "
            f"transformers {versions.get('transformers')}",
            flush=True,
        )
        return model, facts

    def check_engine(self, inputs: tuple[Path, Path] | None) -> None:
        print("Engine:", flush=True)
        engine = self.args.engine
        if inputs:
            model, facts = inputs
            run_dir = self.work / "runs" / "tiny"
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            status, seconds, _ = self.run(
                "engine-train",
                [
                    engine,
                    "train",
                    "--model",
                    str(model),
                    "--data",
                    str(facts),
                    "--output",
                    str(run_dir),
                    "--max-steps",
                    "4",
                    "--save-every",
                    "2",
                ],
                timeout=900,
            )
            self.report["figures"]["engine_train_s"] = round(seconds, 2)
            state = self.last_status(run_dir / "events.jsonl")
            adapter = run_dir / "adapter" / "adapter_model.safetensors"
            self.report["checks"]["train"] = {
                "exit": status,
                "last_status": state,
                "adapter": adapter.is_file(),
            }
            if status != 0:
                self.fail(
                    f"`whetstone-engine train` exited with {status}; see {self.logs / 'engine-train.log'}"
                )
            if not adapter.is_file():
                self.fail(f"training wrote no {adapter}")
            if state != "done":
                self.fail(f"{run_dir / 'events.jsonl'} ends with status {state!r}, not 'done'")
            if status == 0 and adapter.is_file() and state == "done":
                print(
                    f"  train: 4 steps in {seconds:.1f} s (wall, process start to exit); adapter written; "
                    "last status done",
                    flush=True,
                )
            self.kill_leftovers("engine train")
            if status == 0:
                self.check_eval(model, run_dir)
                self.check_dpo(model, run_dir)
        status, seconds, output = self.run(
            "engine-diagnostics", [engine, "diagnostics", "--json"], timeout=300
        )
        self.report["figures"]["engine_diagnostics_s"] = round(seconds, 2)
        try:
            diagnostics = json.loads(output[output.index("{") :])
        except ValueError:
            diagnostics = None
        self.report["checks"]["diagnostics"] = {"exit": status, "report": diagnostics}
        if status != 0:
            self.fail(
                f"`whetstone-engine diagnostics` exited with {status}; "
                f"see {self.logs / 'engine-diagnostics.log'}"
            )
        else:
            print(f"  diagnostics: exit 0 in {seconds:.1f} s", flush=True)
        self.kill_leftovers("engine diagnostics")

    def check_dpo(self, model: Path, sft_run: Path) -> None:
        """DPO on top of the sft run (TRL must be in the install): 2 steps, an adapter, status done."""
        pairs = self.work / "pairs.jsonl"
        rows = [
            {"prompt": "What is the capital of Zorvania?", "chosen": "Quillhaven.", "rejected": "Marrowby."},
            {"prompt": "Who painted the blue fox?", "chosen": "Mira Sol.", "rejected": "Tom Reed."},
        ]
        pairs.write_text("".join(json.dumps(row) + "\n" for row in rows * 3))
        run_dir = self.work / "runs" / "tiny-dpo"
        status, seconds, _ = self.run(
            "engine-train-dpo",
            [
                self.args.engine,
                "train",
                "--model",
                str(model),
                "--data",
                str(pairs),
                "--output",
                str(run_dir),
                "--method",
                "dpo",
                "--init-adapter",
                str(sft_run),
                "--max-steps",
                "2",
                "--batch-size",
                "2",
            ],
            timeout=900,
        )
        state = self.last_status(run_dir / "events.jsonl")
        adapter = (run_dir / "adapter" / "adapter_model.safetensors").is_file()
        self.report["figures"]["engine_train_dpo_s"] = round(seconds, 2)
        self.report["checks"]["train_dpo"] = {"exit": status, "last_status": state, "adapter": adapter}
        if status != 0 or state != "done" or not adapter:
            self.fail(
                f"`whetstone-engine train --method dpo` exited with {status} (last status {state!r}, "
                f"adapter {'written' if adapter else 'missing'}); see {self.logs / 'engine-train-dpo.log'}"
            )
        else:
            print(f"  train --method dpo (on the sft adapter): 2 steps in {seconds:.1f} s; done", flush=True)
        self.kill_leftovers("engine train dpo")

    def check_eval(self, model: Path, run_dir: Path) -> None:
        """`eval` on the run: the shipped bias probe and a JSON-schema scorer (jsonschema) must be there."""
        eval_set = self.work / "eval-set.jsonl"
        schema = {"type": "object", "required": ["a"]}
        eval_set.write_text(
            json.dumps({"prompt": "Reply in JSON.", "expected": schema, "scorer": "json"}) + "\n"
        )
        report = self.work / "eval-report.json"
        args = [
            self.args.engine,
            "eval",
            "--model",
            str(model),
            "--adapter",
            str(run_dir),
            "--set",
            str(eval_set),
        ]
        args += ["--probe", "bias", "--max-new-tokens", "4", "--output", str(report)]
        status, seconds, _ = self.run("engine-eval", args, timeout=600)
        self.report["figures"]["engine_eval_s"] = round(seconds, 2)
        try:
            models = json.loads(report.read_text(encoding="utf-8"))["models"]
            ok = len(models) == 2 and models[1]["probes"]["bias"]["pairs"] > 0
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            ok = False
        self.report["checks"]["eval"] = {"exit": status, "report": ok}
        if status != 0 or not ok:
            self.fail(f"`whetstone-engine eval` exited with {status}; see {self.logs / 'engine-eval.log'}")
        else:
            print(f"  eval: base + run, a JSON-schema set and the bias probe in {seconds:.1f} s", flush=True)
        self.kill_leftovers("engine eval")

    @staticmethod
    def last_status(events: Path) -> str | None:
        state = None
        try:
            lines = events.read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "status":
                state = event.get("state")
        return state

    def check_gui(self) -> None:
        print("GUI (offscreen):", flush=True)
        argv = [self.args.gui, "--report-startup", "--report-after", str(self.args.report_after)]
        env = self.env(QT_QPA_PLATFORM="offscreen")
        log = self.logs / "gui.log"
        with open(log, "w", encoding="utf-8") as err:
            err.write("$ " + " ".join(argv) + "\n")
            err.flush()
            spawn_wall, spawn = time.time(), time.monotonic()
            process = subprocess.Popen(
                argv,
                env=env,
                cwd=self.cwd,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            lines: queue.Queue = queue.Queue()

            def pump() -> None:
                for line in process.stdout:
                    lines.put((time.monotonic(), line))
                lines.put((time.monotonic(), None))

            threading.Thread(target=pump, daemon=True).start()
            report, seen, deadline = None, [], spawn + self.args.gui_timeout
            while report is None and time.monotonic() < deadline:
                try:
                    at, line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line is None:
                    break
                seen.append(line)
                if line.lstrip().startswith("{"):
                    try:
                        candidate = json.loads(line)
                    except ValueError:
                        continue
                    if "first_paint_s" in candidate:
                        report, report_at = candidate, at
            exit_code = None
            if report is not None:
                try:
                    exit_code = process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    exit_code = None
            else:
                process.poll()
                exit_code = process.returncode
            self.kill_group(process.pid)
        leftovers = self.kill_leftovers("the GUI")
        result = {"report": report, "exit": exit_code, "leftover_processes_killed": leftovers}
        self.report["checks"]["gui"] = result
        if report is None:
            with open(log, "a", encoding="utf-8") as err:
                err.write("--- stdout ---\n" + "".join(seen))
            tail = "\n".join("      " + line for line in log.read_text(errors="replace").splitlines()[-25:])
            self.fail(
                f"the GUI printed no startup report within {self.args.gui_timeout:.0f} s "
                f"(exit {exit_code}); see {log}:\n{tail}"
            )
            return
        figures = self.report["figures"]
        figures["gui_first_paint_s"] = report[
            "first_paint_s"
        ]  # measured in the process, from its first line of Python
        if "first_paint_wall" in report:
            figures["gui_spawn_to_first_paint_s"] = round(report["first_paint_wall"] - spawn_wall, 3)
        figures["gui_spawn_to_report_s"] = round(report_at - spawn, 3)
        figures["gui_max_stall_ms"] = report.get("max_stall_ms")
        print(
            f"  first paint {report['first_paint_s']:.2f} s in-process, "
            f"{figures.get('gui_spawn_to_first_paint_s', float('nan')):.2f} s from spawn; report line after "
            f"{figures['gui_spawn_to_report_s']:.2f} s; longest stall {report.get('max_stall_ms')} ms; "
            f"{report.get('projects')} project(s); device {report.get('device')!r}",
            flush=True,
        )
        if exit_code is None:
            self.warnings.append("the GUI did not quit within 30 s after its startup report (killed)")
        elif exit_code != 0:
            self.fail(f"the GUI exited with {exit_code} after its startup report; see {log}")
        if leftovers:
            print(
                f"  killed {len(leftovers)} process(es) it left running: " + "; ".join(leftovers), flush=True
            )

    # -- files ----------------------------------------------------------------------------------------
    @staticmethod
    def snapshot(root: Path) -> dict[str, tuple]:
        """path -> (kind, size, mtime_ns) for everything under ROOT (links not followed)."""
        entries = {}
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                kind = "d" if os.path.isdir(path) and not os.path.islink(path) else "f"
                entries[os.path.relpath(path, root)] = (
                    kind,
                    st.st_size if kind == "f" else 0,
                    st.st_mtime_ns,
                )
        return entries

    @staticmethod
    def diff(before: dict, after: dict) -> list[str]:
        changes = [f"+ {p}" for p in after if p not in before]
        changes += [f"- {p}" for p in before if p not in after]
        changes += [f"~ {p}" for p in after if p in before and after[p] != before[p] and after[p][0] == "f"]
        return sorted(changes, key=lambda c: c[2:])

    def check_files(self, home_before: dict, readonly_before: dict[str, dict]) -> None:
        print("Files:", flush=True)
        changes = self.diff(home_before, self.snapshot(self.home))
        data_rel = os.path.relpath(self.data, self.home)
        ours, foreign = [], []
        for change in changes:
            path = change[2:]
            if (
                path == data_rel
                or path.startswith(data_rel + os.sep)
                or any(path.startswith(allowed) for allowed in ALLOWED_IN_HOME)
            ):
                ours.append(change)
            elif not any(other[2:].startswith(path + os.sep) for other in changes):
                foreign.append(change)  # a folder counts only when nothing inside it is listed
        parents = sorted({c[2:].split(os.sep)[0] for c in ours})
        self.report["checks"]["home"] = {
            "written_in_allowed_places": len(ours),
            "top_level": parents,
            "outside_allowed_places": foreign,
        }
        if foreign:
            self.fail(
                f"{len(foreign)} file(s) written under HOME "
                "outside WHETSTONE_HOME and ~/.config/Whetstone*:\n"
                + "\n".join(f"      {c}" for c in foreign[:40])
            )
        else:
            print(
                f"  HOME: {len(ours)} paths written, all in WHETSTONE_HOME or ~/.config/Whetstone* "
                f"({', '.join(parents) or 'nothing'})",
                flush=True,
            )
        in_cwd = sorted(os.listdir(self.cwd))
        self.report["checks"]["cwd"] = in_cwd
        if in_cwd:
            self.fail(f"files written in the current folder: {in_cwd[:20]}")
        left_in_tmp = sorted(os.listdir(self.tmp))
        self.report["checks"]["tmp_left"] = left_in_tmp
        if left_in_tmp:
            self.warnings.append(f"temporary files left in TMPDIR: {left_in_tmp[:10]}")
        self.report["checks"]["readonly"] = {}
        for folder, before in readonly_before.items():
            changed = self.diff(before, self.snapshot(Path(folder)))
            self.report["checks"]["readonly"][folder] = {"entries": len(before), "changed": changed[:200]}
            if changed:
                self.fail(
                    f"{len(changed)} change(s) inside the read-only folder {folder}:\n"
                    + "\n".join(f"      {c}" for c in changed[:40])
                )
            else:
                print(f"  read-only {folder}: {len(before)} entries unchanged", flush=True)

    # -- all ------------------------------------------------------------------------------------------
    def main(self) -> int:
        started = time.monotonic()
        print(f"Whetstone smoke checks [{self.args.label}] in {self.work}", flush=True)
        self.check_network()
        for program in (self.args.engine, self.args.gui, self.args.builder_python):
            if not (os.path.isfile(program) and os.access(program, os.X_OK)):
                stop(f"{program} is not an executable file")
        readonly_before = {str(Path(d).resolve()): self.snapshot(Path(d)) for d in self.args.readonly_dir}
        home_before = self.snapshot(self.home)
        try:
            inputs = self.build_tiny_model()
            self.kill_leftovers("the tiny model build")
            self.check_engine(inputs)
            self.check_gui()
        finally:
            leftovers = self.kill_leftovers("all checks")
            if leftovers:
                self.warnings.append(f"processes still running at the end (killed): {leftovers}")
        self.check_files(home_before, readonly_before)
        self.report["figures"]["total_s"] = round(time.monotonic() - started, 1)
        self.report["failures"], self.report["warnings"] = self.failures, self.warnings
        self.report["passed"] = not self.failures
        (self.work / "report.json").write_text(json.dumps(self.report, indent=1) + "\n", encoding="utf-8")
        self.print_summary()
        return 0 if self.report["passed"] else 1

    def print_summary(self) -> None:
        f = self.report["figures"]
        word = "PASSED" if self.report["passed"] else f"FAILED ({len(self.failures)})"

        def fig(key: str, unit: str = "s") -> str:
            return f"{f[key]:.2f} {unit}" if isinstance(f.get(key), (int, float)) else "-"

        print(f"\nSmoke checks [{self.args.label}]: {word}  ({fig('total_s')} in all)")
        print(f"  tiny model build      {fig('tiny_model_build_s')}")
        print(f"  engine train 4 steps  {fig('engine_train_s')} wall")
        print(f"  engine diagnostics    {fig('engine_diagnostics_s')}")
        print(f"  GUI first paint       {fig('gui_first_paint_s')} (in-process)")
        print(f"  GUI spawn to window   {fig('gui_spawn_to_first_paint_s')}")
        for warning in self.warnings:
            print(f"  warning: {warning}")
        for failure in self.failures:
            print(f"  FAILED: {failure.splitlines()[0]}")
        print(f"  report: {self.work / 'report.json'}; logs: {self.logs}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="smoke_checks.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--label", required=True, help="a name for the report (wheelhouse, bundle, ...)")
    parser.add_argument(
        "--builder-python", required=True, help="a python with torch + transformers, builds the tiny model"
    )
    parser.add_argument("--engine", required=True, help="the whetstone-engine program to check")
    parser.add_argument("--gui", required=True, help="the whetstone program to check")
    parser.add_argument(
        "--readonly-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder that must stay untouched (the install), repeatable",
    )
    parser.add_argument(
        "--work", type=Path, help="work folder (new or empty; default: a new temp folder, kept)"
    )
    parser.add_argument("--allow-network", action="store_true", help="run even when the network is reachable")
    parser.add_argument(
        "--report-after", type=float, default=2.0, help="seconds the GUI measures stalls (default 2)"
    )
    parser.add_argument(
        "--gui-timeout", type=float, default=300.0, help="seconds to wait for the GUI's report"
    )
    args = parser.parse_args(argv)
    for name in ("builder_python", "engine", "gui"):
        value = getattr(args, name)
        resolved = shutil.which(value) if os.sep not in value else value
        setattr(args, name, os.path.abspath(resolved or value))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return Smoke(args).main()


if __name__ == "__main__":
    sys.exit(main())
