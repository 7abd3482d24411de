"""The model library: every local model Whetstone can offer, described without loading it.

Sources: the demo model, folders imported from GGUF into <home>/models, the local Hugging
Face hub cache, and folders the user added. What the user added, and which models they
allowed to run their own code, is kept in <home>/library.toml. Nothing here imports torch
or transformers, so a scan is safe on a GUI worker thread; `scan` raises `Cancelled`
(engine.data.stats.Cancelled, re-exported here) when its `cancel()` returns True.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from engine.errors import Cancelled, ModelError
from engine.models.demo import DEMO_NAME, demo_gguf_path, demo_model_dir, demo_model_ready
from engine.models.gguf_import import import_gguf
from engine.models.info import ModelInfo, describe_model, hf_repo_id
from engine.util.files import atomic_write_text, whetstone_home

__all__ = [
    "Cancelled",
    "ModelInfo",
    "ModelLibrary",
    "allow_remote_code_in_this_process",
    "describe_model",
    "hf_cache_model_dirs",
    "import_gguf",
    "remote_code_consent",
]

log = logging.getLogger(__name__)

STATE_FILE = "library.toml"
STATE_HEADER = "# Whetstone's model library: folders you added, models allowed to run their own code.\n"


def hf_hub_cache() -> Path:
    """The local Hugging Face hub cache, resolved the way huggingface_hub does it."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "huggingface" / "hub"


def hf_cache_model_dirs() -> list[tuple[str, Path]]:
    """("org/name", snapshot folder) for each cached model that has a config.json.

    The snapshot is the one refs/main points at, else the newest one.
    """
    found = []
    try:
        repos = sorted(p for p in hf_hub_cache().glob("models--*") if p.is_dir())
    except OSError:
        return []
    for repo in repos:
        snapshot = _pick_snapshot(repo)
        if snapshot is not None and (snapshot / "config.json").is_file():
            found.append((hf_repo_id(snapshot) or repo.name, snapshot))
    return found


def _pick_snapshot(repo: Path) -> Path | None:
    snapshots = repo / "snapshots"
    try:
        main = snapshots / (repo / "refs" / "main").read_text(encoding="utf-8").strip()
        if main.name and main.is_dir():
            return main
    except OSError:
        pass
    try:
        candidates = [p for p in snapshots.iterdir() if p.is_dir()]
    except OSError:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


@dataclass
class _State:
    added: list[str] = field(default_factory=list)
    remote_code_allowed: list[str] = field(default_factory=list)


def _key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


class ModelLibrary:
    """The user's model list. State is re-read on every call, so the GUI and CLI can share it."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = Path(home) if home is not None else whetstone_home()
        self.state_file = self.home / STATE_FILE
        self.set_aside: Path | None = None  # where an unreadable library.toml was moved, if one was
        self._lock = threading.RLock()

    # ---- state file

    def _load(self) -> _State:
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _State()
        except OSError as exc:  # unreadable, not damaged: leave it where it is
            log.warning("%s cannot be read (%s); using an empty library", self.state_file, exc)
            return _State()
        try:
            raw = tomllib.loads(text)
            state = _State(raw.get("added", []), raw.get("remote_code_allowed", []))
            for paths in (state.added, state.remote_code_allowed):
                if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                    raise ValueError("`added` and `remote_code_allowed` must be lists of paths")
            return state
        except (tomllib.TOMLDecodeError, ValueError, TypeError, AttributeError) as exc:
            # Keep the damaged file for the user to look at; start from an empty library.
            stamp, n = time.strftime("%Y%m%d-%H%M%S"), 1
            aside = self.state_file.with_name(f"{STATE_FILE}.corrupt-{stamp}")
            while aside.exists():  # never overwrite an earlier damaged copy
                n += 1
                aside = self.state_file.with_name(f"{STATE_FILE}.corrupt-{stamp}-{n}")
            try:
                os.replace(self.state_file, aside)
                self.set_aside = aside
            except OSError:
                pass
            log.warning(
                "%s is unreadable (%s); moved it to %s and started an empty library",
                self.state_file,
                exc,
                aside,
            )
            return _State()

    def _save(self, state: _State) -> None:
        data = {"version": 1, "added": state.added, "remote_code_allowed": state.remote_code_allowed}
        atomic_write_text(self.state_file, STATE_HEADER + tomli_w.dumps(data))

    def added_folders(self) -> list[Path]:
        with self._lock:
            return [Path(p) for p in self._load().added]

    # ---- listing

    def scan(
        self,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> list[ModelInfo]:
        """Describe every known model: demo first, then by name. Raises Cancelled if cancel() says so."""
        with self._lock:
            state = self._load()
        candidates: list[tuple[Path, str]] = [(demo_model_dir(), "demo")]
        models_dir = self.home / "models"
        if models_dir.is_dir():  # hidden folders are imports in progress (or killed ones)
            candidates += [
                (p, "imported")
                for p in sorted(models_dir.iterdir())
                if p.is_dir() and not p.name.startswith(".")
            ]
        candidates += [(snapshot, "hf-cache") for _repo, snapshot in hf_cache_model_dirs()]
        candidates += [(Path(p), "added") for p in state.added]

        unique: dict[str, tuple[Path, str]] = {}
        for path, source in candidates:
            unique.setdefault(_key(path), (path, source))  # the first source wins
        allowed = set(state.remote_code_allowed)
        infos = []
        for done, (key, (path, source)) in enumerate(unique.items(), start=1):
            if cancel is not None and cancel():
                raise Cancelled("model scan cancelled")
            if source == "demo" and not demo_model_ready(path):
                info = _demo_placeholder(Path(key))
            else:
                info = describe_model(path, source=source, remote_code_allowed=key in allowed)
            infos.append(info)
            if progress is not None:
                progress(done, len(unique), info.name)
        return sorted(infos, key=lambda i: (i.source != "demo", i.name.casefold(), str(i.path)))

    # ---- changes

    def add_folder(self, path: str | Path) -> ModelInfo:
        """Record a model folder; ModelError (nothing recorded) if it cannot be used as it is."""
        with self._lock:
            info = describe_model(path, source="added", remote_code_allowed=self.remote_code_allowed(path))
            if info.problem is not None:
                raise ModelError(info.problem, info.hint)
            state = self._load()
            if str(info.path) not in state.added:
                state.added.append(str(info.path))
                self._save(state)
            return info

    def remove(self, path: str | Path) -> None:
        """Forget an added folder (and its remote-code consent); never deletes files."""
        key = _key(path)
        with self._lock:
            state = self._load()
            if key in state.added:
                state.added.remove(key)
                state.remote_code_allowed = [p for p in state.remote_code_allowed if p != key]
                self._save(state)

    def set_remote_code_allowed(self, path: str | Path, allowed: bool) -> None:
        key = _key(path)
        with self._lock:
            state = self._load()
            if allowed == (key in state.remote_code_allowed):
                return
            if allowed:
                state.remote_code_allowed.append(key)
            else:
                state.remote_code_allowed.remove(key)
            self._save(state)

    def remote_code_allowed(self, path: str | Path) -> bool:
        with self._lock:
            return _key(path) in self._load().remote_code_allowed


_PROCESS_CONSENT = threading.Event()


def allow_remote_code_in_this_process() -> None:
    """The user passed --allow-remote-code: this command may run the custom code of the models it loads."""
    _PROCESS_CONSENT.set()


def remote_code_consent(path: str | Path, home: Path | None = None) -> bool:
    """Whether a folder's own code may run: consent recorded in this workspace's library (or given
    by --allow-remote-code for this process). A run's or project's config file never counts: it
    may have come from someone else."""
    return _PROCESS_CONSENT.is_set() or ModelLibrary(home).remote_code_allowed(path)


def _demo_placeholder(path: Path) -> ModelInfo:
    problem, hint = (
        "The demo model has not been prepared yet.",
        (
            "It is converted from the bundled GGUF file on first use (about a minute), "
            "or now with `whetstone-engine demo-model`."
        ),
    )
    try:
        demo_gguf_path()
    except ModelError as exc:  # the package that carries it is missing: say how to get it
        problem, hint = exc.message, exc.hint
    return ModelInfo(
        path=path,
        name=DEMO_NAME,
        source="demo",
        architecture=None,
        model_type=None,
        parameters=None,
        context_length=None,
        has_chat_template=False,
        memory_4bit_bytes=None,
        needs_remote_code=False,
        remote_code_allowed=False,
        problem=problem,
        hint=hint,
    )
