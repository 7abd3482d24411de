"""Does the chosen method fit the chosen data? The data's shape, read off the UI thread, and what to say.

The engine refuses a method that cannot train on the data (engine.data.preference); the setup says the
same before Start. Raw text under SFT is named for what it is: continued pre-training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from app.infra.tasks import TaskRunner, while_alive
from app.train import methods

READING = object()  # the shape of these files is being read


def shape_key(data: dict) -> tuple | None:
    """What a data file's shape depends on: the file (and its last change) and how it is read."""
    path = data.get("path") or ""
    if not path:
        return None
    try:
        stat = Path(path).stat()
        stamp = (path, stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (path, None, None)
    columns = tuple(sorted((data.get("columns") or {}).items()))
    return (stamp, data.get("format"), columns, data.get("text_mode"))


def read_shape(data: dict) -> str | None:
    """The shape name of the training file ("messages", "text", "preference", ...); None if unreadable
    (the run itself reports why)."""
    from engine.data.reading import open_data
    from engine.errors import UserError

    try:
        return open_data(data["path"], data["format"], data.get("columns"), data["text_mode"])[1].name
    except (UserError, OSError):
        return None


class DataShapes(QObject):
    """The shapes of the data files, cached by shape_key; `on_read` is called when one arrives."""

    def __init__(self, tasks: TaskRunner, on_read: Callable[[], None], parent: QObject | None = None):
        super().__init__(parent)
        self._tasks, self._on_read = tasks, on_read
        self._shapes: dict[tuple, object] = {}

    def shape(self, data: dict) -> str | None:
        """The shape if known; None while it is read (then `on_read` follows) or when unreadable."""
        key = shape_key(data)
        if key is None:
            return None
        if key not in self._shapes:
            self._shapes[key] = READING
            wanted = dict(data)
            self._tasks.run(
                lambda _progress, _cancelled: read_shape(wanted),
                while_alive(self, lambda shape: self._read(key, shape)),
                name="data shape",
            )
        found = self._shapes[key]
        return None if found is READING else found

    def _read(self, key: tuple, shape: str | None) -> None:
        self._shapes[key] = shape
        self._on_read()


def method_problem(method: str, shape: str | None) -> str:
    """The engine's one line when `method` cannot train on data of `shape`; "" when it can (or unknown)."""
    if shape is None:
        return ""
    from engine.config import PREFERENCE_METHODS
    from engine.data.preference import check_method_fits_data
    from engine.data.shapes import PREFERENCE_SHAPES
    from engine.errors import DataError

    try:
        check_method_fits_data(method, shape)
    except DataError as exc:  # the engine's words for what is wrong; what to do, in the setup's words
        if shape in PREFERENCE_SHAPES and method not in PREFERENCE_METHODS:
            todo = "Choose DPO, ORPO or KTO as the method, or other training data."
        else:
            todo = (
                "Choose a preference dataset (the Chat tab's compare mode makes one), or SFT as the method."
            )
        return f"{exc.message} {todo}"
    return ""


def method_note(method: str, shape: str | None) -> tuple[str, str]:
    """(note, tooltip) the setup shows under the data for this method and shape; ("", "") for none."""
    if method == "sft" and shape == "text":
        return methods.CONTINUED_PRETRAINING, methods.CONTINUED_PRETRAINING_TIP
    return "", ""


def adapter_problem(path: str) -> str:
    """Why training cannot start from the adapter at `path` (a run or adapter folder); "" if it can."""
    from engine.errors import UserError
    from engine.models.adapters import check_adapter

    try:
        check_adapter(path)
    except UserError as exc:
        return exc.one_line()
    except OSError as exc:
        return f"Cannot read {path}: {exc.strerror or exc}."
    return ""
