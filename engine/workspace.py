"""The workspace: a folder of projects, each with its settings, datasets, runs and exports.

```
ROOT/workspace.toml             format version, created
ROOT/projects/<slug>/project.toml  [project] name, created, description + the run settings
ROOT/projects/<slug>/datasets/  copies of the user's files (the originals are never touched)
ROOT/projects/<slug>/runs/      run folders (see engine.training.recipe)
ROOT/projects/<slug>/exports/
ROOT/projects/<slug>/eval-sets/ eval sets (JSONL) and evals/ their reports
```

The folder name is fixed at creation (runs record paths inside it); the display name lives
in project.toml. Folders whose name starts with "." are ours in transit (being created or
deleted) and never listed, so a browser never sees half a project.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tomllib
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w

from engine.config import RunConfig
from engine.errors import UserError
from engine.runs.state import RunSummary, engine_alive, summarize_run
from engine.util.files import (
    atomic_write_text,
    copy_tree,
    is_inside,
    relative_inside,
    whetstone_home,
)
from engine.util.names import check_display_name, is_reserved

__all__ = [
    "Workspace",
    "ProjectSummary",
    "DatasetSummary",
    "RunSummary",
    "summarize_run",
    "load_project_config",
    "save_project_config",
    "DEMO_PROJECT",
]

WORKSPACE_FILE = "workspace.toml"
PROJECT_FILE = "project.toml"
SUBDIRS = ("datasets", "runs", "exports")
EVAL_SETS = "eval-sets"  # the project's eval sets (JSONL, engine.eval.sets), scored by the Evaluate tab
FORMAT_VERSION = 1
MAX_NAME = 100
DEMO_PROJECT = "Whetstone demo"


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    path: Path
    size_bytes: int
    modified: float


@dataclass(frozen=True)
class ProjectSummary:
    name: str
    path: Path
    created: str
    description: str
    model: str | None
    dataset: str | None
    datasets: tuple[DatasetSummary, ...]
    runs: tuple[RunSummary, ...]
    exports: tuple[Path, ...]
    problem: str | None


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _slug(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "project"
    return f"{slug}-project" if is_reserved(slug) else slug


def _read_project_file(folder: Path) -> dict[str, Any]:
    """project.toml as a dict with a [project] table; UserError saying what is wrong otherwise."""
    path = folder / PROJECT_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing.", "Delete the project, or restore its project.toml.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(
            f"{path} is unreadable: {exc}.", "Fix the file in a text editor, or delete the project."
        ) from None
    if not isinstance(raw.get("project"), dict):
        raise UserError(
            f"{path} has no [project] table.", "Fix the file in a text editor, or delete the project."
        )
    return raw


def _resolve(folder: Path, value: str) -> str:
    return str((folder / Path(value).expanduser()).resolve()) if value else value


def _config_from_raw(folder: Path, raw: dict[str, Any]) -> RunConfig:
    config = RunConfig.from_dict({k: v for k, v in raw.items() if k != "project"})
    # Relative paths mean "inside the project", wherever the process runs from.
    return config.with_overrides(
        {
            "model.path": _resolve(folder, config.model.path),
            "data.path": _resolve(folder, config.data.path),
            "data.validation_path": _resolve(folder, config.data.validation_path),
        }
    )


def _write_project_file(folder: Path, meta: dict[str, Any], config: RunConfig) -> None:
    raw = config.to_dict()
    for key in ("path", "validation_path"):
        raw["data"][key] = relative_inside(folder, raw["data"][key])
    atomic_write_text(folder / PROJECT_FILE, tomli_w.dumps({"project": meta, **raw}))


def load_project_config(project_path: str | Path) -> RunConfig:
    """The project's run settings, with data and model paths resolved against the project folder."""
    folder = Path(project_path)
    return _config_from_raw(folder, _read_project_file(folder))


def save_project_config(project_path: str | Path, config: RunConfig) -> None:
    """Replace the project's run settings atomically; the [project] table is kept as it is."""
    folder = Path(project_path)
    _write_project_file(folder, _read_project_file(folder)["project"], config)


def _entries(folder: Path) -> list[Path]:
    """Visible children of a folder; an empty list if it vanished."""
    try:
        return [p for p in folder.iterdir() if not p.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _dataset_summary(path: Path) -> DatasetSummary:
    stat = path.stat()
    size = stat.st_size
    if path.is_dir():  # a datasets.save_to_disk folder
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return DatasetSummary(path.name, path, size, stat.st_mtime)


def _scan(paths: list[Path], summarize) -> list:
    found = []
    for path in paths:
        try:
            found.append(summarize(path))
        except FileNotFoundError:
            continue  # deleted while we looked: simply not there any more
    return found


def _run_started(run: RunSummary) -> float:
    if run.started is not None:
        return run.started
    try:
        return run.path.stat().st_mtime  # no event yet: the folder's age stands in
    except OSError:
        return 0.0


def _list_runs(folder: Path) -> tuple[RunSummary, ...]:
    runs = _scan([p for p in _entries(folder / "runs") if p.is_dir()], summarize_run)
    return tuple(sorted(runs, key=_run_started, reverse=True))  # newest first


class Workspace:
    """Projects under `root` (default: Whetstone's data folder). Nothing is written until asked."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else whetstone_home()
        self.projects_dir = self.root / "projects"

    # Reading

    def list_projects(self) -> list[ProjectSummary]:
        """Every project, sorted by name; broken ones are listed with `problem` set."""
        found = []
        for folder in _entries(self.projects_dir):
            try:
                if folder.is_dir():
                    found.append(self.summarize(folder))
            except (UserError, OSError) as exc:
                if folder.is_dir():  # still there, but unreadable: list it with the reason
                    problem = (
                        exc.one_line() if isinstance(exc, UserError) else f"{folder} is unreadable: {exc}."
                    )
                    found.append(ProjectSummary(folder.name, folder, "", "", None, None, (), (), (), problem))
        return sorted(found, key=lambda p: (p.name.casefold(), p.path.name))

    def summarize(self, project_path: str | Path) -> ProjectSummary:
        folder = Path(project_path)
        if not folder.is_dir():
            raise UserError(f"Project folder {folder} does not exist.", "Choose a project from the list.")
        name, created, description, model, dataset, problem = folder.name, "", "", None, None, None
        try:
            raw = _read_project_file(folder)
            meta = raw["project"]
            name = str(meta.get("name") or folder.name)
            created, description = str(meta.get("created", "")), str(meta.get("description", ""))
            config = _config_from_raw(folder, raw)
            model, dataset = config.model.path or None, config.data.path or None
        except UserError as exc:
            problem = exc.one_line()
        datasets = _scan(_entries(folder / "datasets"), _dataset_summary)
        exports = sorted(_entries(folder / "exports"), key=lambda p: p.name.casefold())
        return ProjectSummary(
            name,
            folder,
            created,
            description,
            model,
            dataset,
            tuple(sorted(datasets, key=lambda d: d.name.casefold())),
            _list_runs(folder),
            tuple(exports),
            problem,
        )

    # Changing

    def create_project(
        self,
        name: str,
        *,
        model: str | None = None,
        dataset: Path | None = None,
        config: RunConfig | None = None,
        description: str = "",
        eval_sets: tuple[Path, ...] = (),
    ) -> Path:
        """Make a project folder; `dataset` and `eval_sets` are copied into it (the user's files are
        never modified)."""
        name = self._check_name(name)
        overrides = {}
        if model:
            overrides["model.path"] = str(Path(model).expanduser().resolve())
        source = Path(dataset).expanduser() if dataset is not None else None
        if source is not None:
            from engine.data.source import check_source

            check_source(source, "Dataset")  # missing, unreachable, unreadable, a FIFO: one clear reason
            if source.is_dir() and is_inside(self.projects_dir, source):  # it would copy itself forever
                raise UserError(
                    f"The data folder {source.resolve()} holds this workspace ({self.root}), "
                    "so it cannot be copied into one of its projects.",
                    "Pick a data file or a dataset folder outside the workspace.",
                    kind="data",
                )
            overrides["data.path"] = f"datasets/{source.name}"
        config = (config or RunConfig()).with_overrides(overrides)
        meta = {"name": name, "created": _now(), "description": description}

        def fill(staging: Path) -> None:
            # Contents only: a read-only source must not make our copy read-only.
            if source is not None:  # a file, or a datasets.save_to_disk folder
                copy_tree(source, staging / "datasets" / source.name, contents_only=True)
            for eval_set in eval_sets:
                (staging / EVAL_SETS).mkdir(exist_ok=True)
                shutil.copyfile(eval_set, staging / EVAL_SETS / Path(eval_set).name)
            _write_project_file(staging, meta, config)

        return self._materialize(_slug(name), fill)

    def rename_project(self, project_path: str | Path, new_name: str) -> None:
        """Change the display name; the folder keeps its name because runs refer to it."""
        folder = self._own(project_path)
        raw = self._readable(folder, "rename")
        raw["project"]["name"] = self._check_name(new_name, exclude=folder)
        atomic_write_text(folder / PROJECT_FILE, tomli_w.dumps(raw))

    def duplicate_project(self, project_path: str | Path, new_name: str | None = None) -> Path:
        """A new project with the same settings and datasets; runs and exports are not copied."""
        folder = self._own(project_path)
        raw = self._readable(folder, "duplicate")
        if new_name is None:
            taken = self._names()
            base = f"{raw['project'].get('name') or folder.name} copy"
            new_name = next(
                n for n in (base, *(f"{base} {i}" for i in range(2, 10_000))) if n.casefold() not in taken
            )
        name = self._check_name(new_name)
        raw["project"].update(name=name, created=_now())

        def fill(staging: Path) -> None:
            if (folder / "datasets").is_dir():
                shutil.rmtree(staging / "datasets")
                copy_tree(folder / "datasets", staging / "datasets")
            atomic_write_text(staging / PROJECT_FILE, tomli_w.dumps(raw))

        return self._materialize(_slug(name), fill)

    def delete_project(self, project_path: str | Path) -> None:
        """Delete a project and everything in it; refused while one of its runs is training."""
        folder = self._own(project_path)
        busy = [run for run in _entries(folder / "runs") if engine_alive(run)]
        if busy:
            raise UserError(
                f"A run in this project is still training ({busy[0].name}).",
                "Stop the run first, then delete the project.",
            )
        trash = folder.with_name(f".deleting-{folder.name}-{secrets.token_hex(4)}")
        try:
            os.rename(folder, trash)  # one step: the browser sees the whole project or none of it
        except OSError as exc:
            raise UserError(
                f"Cannot delete {folder}: {exc.strerror or exc}.",
                "Close any program that uses files in it, then try again.",
                kind="io",
            ) from None
        shutil.rmtree(trash, ignore_errors=True)

    def first_start(self) -> Path | None:
        """On a brand-new workspace, create the demo project and return it; otherwise None."""
        if (self.root / WORKSPACE_FILE).exists():
            return None
        project = None
        if not _entries(self.projects_dir):  # projects but no workspace.toml: not a first start
            from engine.models import demo

            project = self.create_project(
                DEMO_PROJECT,
                model=str(demo.demo_model_dir()),
                dataset=demo.demo_dataset_path(),
                config=demo.load_demo_config(),
                description="SmolLM2-135M-Instruct learns a few facts about Whetstone.",
                eval_sets=demo.demo_eval_sets(),
            )
        atomic_write_text(
            self.root / WORKSPACE_FILE, tomli_w.dumps({"format_version": FORMAT_VERSION, "created": _now()})
        )
        return project

    # Helpers

    def _names(self, exclude: Path | None = None) -> set[str]:
        names = set()
        for folder in _entries(self.projects_dir):
            if exclude is not None and folder.name == exclude.name:
                continue
            try:
                names.add(str(_read_project_file(folder)["project"].get("name") or folder.name).casefold())
            except UserError:
                names.add(folder.name.casefold())
        return names

    def _check_name(self, name: str, exclude: Path | None = None) -> str:
        name = name.strip() if isinstance(name, str) else ""
        if not name:
            raise UserError("A project needs a name.", "Type a name for the project.")
        if len(name) > MAX_NAME:
            raise UserError(
                f"The project name is {len(name)} characters long; at most {MAX_NAME} are allowed.",
                "Choose a shorter name.",
            )
        check_display_name(name, "project name")  # line breaks, U+202E and other invisible characters
        if name.casefold() in self._names(exclude):
            raise UserError(f"A project named '{name}' already exists.", "Choose another name.")
        return name

    def _own(self, project_path: str | Path) -> Path:
        """A project folder of this workspace (never an arbitrary folder we might delete)."""
        folder = Path(project_path)
        if not folder.is_dir() or folder.resolve().parent != self.projects_dir.resolve():
            raise UserError(
                f"{folder} is not a project of the workspace {self.root}.", "Choose a project from the list."
            )
        return folder

    def _readable(self, folder: Path, action: str) -> dict[str, Any]:
        try:
            return _read_project_file(folder)
        except UserError as exc:
            raise UserError(f"Cannot {action} this project: {exc.message}", exc.hint) from None

    def _materialize(self, slug: str, fill) -> Path:
        """Build a project in a hidden folder, then move it in under a free name."""
        self.projects_dir.mkdir(parents=True, exist_ok=True)
        staging = self.projects_dir / f".new-{slug}-{secrets.token_hex(4)}"
        try:
            for sub in SUBDIRS:
                (staging / sub).mkdir(parents=True)
            fill(staging)
            for n in range(1, 10_000):
                target = self.projects_dir / (slug if n == 1 else f"{slug}-{n}")
                if target.exists():
                    continue
                try:
                    os.rename(staging, target)
                    return target
                except OSError:
                    continue  # taken a moment ago by someone else
            raise UserError(f"No free folder name for '{slug}' in {self.projects_dir}.", kind="io")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
