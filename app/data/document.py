"""One dataset open in the editor: its rows, the undo stack, the autosave journal, its issues.

Every edit is a QUndoCommand whose redo and undo each apply one position-based operation to
the row store and append it to the journal (engine.data.edit_journal) before anything else
happens, so a crash loses no edit. Saving writes a snapshot of the rows on a worker thread
while editing goes on.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.data.edit_journal import EditJournal, read_pending, set_aside
from engine.data.project_files import keep_original, save_target
from engine.data.review import FIXES, Review, RowIssue, review_row, token_length, trimmed
from engine.data.row_store import RowStore, open_store, save_store
from engine.data.shapes import Shape

MERGE_SECONDS = 3.0
"""Typing in one row within this long is one undo step."""
SYNC_REVIEW_ROWS = 50
"""Edits of up to this many rows are re-checked at once; bigger ones by a background review."""


class _RowsCommand(QUndoCommand):
    """A forward and a backward operation on the store (by position)."""

    MERGE_ID = 1

    def __init__(
        self,
        document: DatasetDocument,
        text: str,
        forward: dict,
        backward: dict | None,
        mergeable: bool = False,
    ) -> None:
        super().__init__(text)
        self.document, self.forward, self.backward = document, forward, backward
        self.mergeable = mergeable
        self.stamp = time.monotonic()
        self.deleted_ids: list[int] = []

    def id(self) -> int:  # noqa: A003 - Qt's name
        return self.MERGE_ID if self.mergeable else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt's name
        same_row = (
            isinstance(other, _RowsCommand)
            and other.mergeable
            and other.forward["positions"] == self.forward["positions"]
        )
        if not same_row or other.stamp - self.stamp > MERGE_SECONDS:
            return False
        self.forward, self.stamp = other.forward, other.stamp
        return True

    def redo(self) -> None:
        self.deleted_ids = self.document._apply(self.forward)

    def undo(self) -> None:
        backward = self.backward
        if backward is None:  # undoing a delete: the rows come back as they were, ids and all
            backward = {
                "op": "insert",
                "positions": sorted(self.forward["positions"]),
                "records": [self.document.store.record(i) for i in self.deleted_ids],
            }
        self.document._apply(backward, ids=self.deleted_ids or None)


class DatasetDocument(QObject):
    rows_changed = Signal(object)  # list of row ids whose content changed
    structure_changed = Signal()  # rows were added or removed
    issues_changed = Signal()
    dirty_changed = Signal(bool)
    journal_failed = Signal(str)

    def __init__(self, path: Path, store: RowStore, shape: Shape, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path, self.store, self.shape = Path(path), store, shape
        self.undo = QUndoStack(self)
        self.journal = EditJournal(self.path)
        self.review = Review()
        self.review_stale = True
        self.tokenizer = None
        self.max_length = 1024
        self._ops: list[dict[str, Any]] = []
        self._recovered = False
        self.undo.cleanChanged.connect(self._on_clean_changed)

    @classmethod
    def open(
        cls, path: str | Path, fmt: str = "auto", columns: dict[str, str] | None = None
    ) -> DatasetDocument:
        """Read the file (call on a worker thread; the document is then moved to the UI thread)."""
        store, shape = open_store(path, fmt, columns)
        return cls(Path(path), store, shape)

    def _on_clean_changed(self, _clean: bool) -> None:
        self.dirty_changed.emit(self.is_dirty())

    # -- state -------------------------------------------------------------------------------
    def is_dirty(self) -> bool:
        return self._recovered or not self.undo.isClean()

    def issues_of(self, row_id: int) -> list[RowIssue]:
        return self.review.issues.get(row_id, [])

    def issue_entries(self) -> list[tuple[int, int, RowIssue]]:
        """(position, row id, issue) of the rows there now (deleted rows keep theirs for undo)."""
        import numpy as np

        ids = np.fromiter(self.review.issues, dtype=np.int64, count=len(self.review.issues))
        positions = self.store.positions_of(ids)
        keep = np.flatnonzero(positions >= 0)
        keep = keep[np.argsort(positions[keep], kind="stable")]
        issues = self.review.issues
        return [
            (int(positions[k]), int(ids[k]), issue) for k in keep.tolist() for issue in issues[int(ids[k])]
        ]

    def issue_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _p, _i, issue in self.issue_entries():
            counts[issue.kind] = counts.get(issue.kind, 0) + 1
        return counts

    # -- recovery ----------------------------------------------------------------------------
    def pending_edits(self):
        """Edits a previous session journaled but never saved; unmatched journals are set aside."""
        pending = read_pending(self.path)
        if pending is not None and not pending.matches_file:
            set_aside(pending)
            return None
        return pending

    def recover(self, pending) -> None:
        for op in pending.ops:
            self.store.apply(op)
        self._ops = [op for op in pending.ops]
        self.journal.start(carry=self._ops)
        self._recovered = True
        self.review_stale = True
        self.structure_changed.emit()
        self.dirty_changed.emit(True)

    def start_journal(self) -> None:
        self.journal.start()

    # -- edits ---------------------------------------------------------------------------------
    def set_records(
        self, ids: list[int], records: list[dict[str, Any]], text: str, typing: bool = False
    ) -> None:
        positions = [self.store.position(i) for i in ids]
        old = [self.store.record(i) for i in ids]
        forward = {"op": "set", "positions": positions, "records": records}
        backward = {"op": "set", "positions": positions, "records": old}
        self.undo.push(_RowsCommand(self, text, forward, backward, mergeable=typing and len(ids) == 1))

    def insert_records(self, positions: list[int], records: list[dict[str, Any]], text: str) -> None:
        forward = {"op": "insert", "positions": positions, "records": records}
        self.undo.push(_RowsCommand(self, text, forward, {"op": "delete", "positions": positions}))

    def delete_rows(self, ids: list[int], text: str) -> None:
        positions = sorted(self.store.position(i) for i in ids)
        self.undo.push(_RowsCommand(self, text, {"op": "delete", "positions": positions}, None))

    def apply_fix(self, kinds: list[str]) -> int:
        """The one-click fix for every row with an issue of these kinds (sharing one fix): one undo step."""
        fix, label, _tip = FIXES[kinds[0]]
        wanted = set(kinds)
        ids = [
            i
            for i, issues in self.review.issues.items()
            if any(x.kind in wanted for x in issues) and self._present(i)
        ]
        if not ids:
            return 0
        ids.sort(key=self.store.position)
        if fix == "trim":
            self.set_records(
                ids,
                [trimmed(self.store.record(i), self.shape) for i in ids],
                f"{label} ({len(ids)} row{'s' if len(ids) != 1 else ''})",
            )
        else:
            self.delete_rows(ids, f"{label} ({len(ids)} row{'s' if len(ids) != 1 else ''})")
        return len(ids)

    def _present(self, row_id: int) -> bool:
        try:
            self.store.position(row_id)
        except KeyError:
            return False
        return True

    def _apply(self, op: dict[str, Any], ids: list[int] | None = None) -> list[int]:
        """Journal first, then change the store; returns the ids a delete removed."""
        try:
            self.journal.append(op)
        except OSError as exc:  # e.g. a full disk: the edit still happens, but say it is not safe
            self.journal_failed.emit(f"Edits cannot be journaled ({exc.strerror or exc}); save soon.")
        self._ops.append(op)
        deleted: list[int] = []
        if op["op"] == "set":
            changed = [
                self.store.set_record(p, r) for p, r in zip(op["positions"], op["records"], strict=True)
            ]
            self._recheck(changed)
            self.rows_changed.emit(changed)
        elif op["op"] == "insert":
            changed = self.store.insert(op["positions"], op["records"] if ids is None else None, ids)
            if ids is None:
                self._recheck(changed)
            self.structure_changed.emit()
        else:
            deleted = self.store.delete(op["positions"])
            self.structure_changed.emit()
        return deleted

    def _recheck(self, ids: list[int]) -> None:
        """Re-check edited rows now when few; otherwise mark the review stale for a background pass."""
        if len(ids) > SYNC_REVIEW_ROWS:
            for i in ids:  # what the bulk edit fixed should not linger until the review is back
                self.review.issues.pop(i, None)
            self.review_stale = True
        else:
            for i in ids:
                issues, rendered = review_row(self.store.peek(i), self.shape, self.tokenizer, self.max_length)
                issues += [x for x in self.review.issues.get(i, []) if x.kind == "duplicate"]
                if issues:
                    self.review.issues[i] = issues
                else:
                    self.review.issues.pop(i, None)
                length = token_length(rendered)  # a preference row's: its longest side's
                if self.tokenizer is not None and len(self.review.lengths) and length is not None:
                    self._set_length(i, length)
        self.issues_changed.emit()

    def _set_length(self, row_id: int, length: int) -> None:
        import numpy as np

        lengths = self.review.lengths
        if row_id >= len(lengths):
            lengths = np.concatenate([lengths, np.full(row_id + 1 - len(lengths), -1, dtype=lengths.dtype)])
            self.review.lengths = lengths
        lengths[row_id] = length

    def set_review(self, review: Review) -> None:
        self.review = review
        self.review_stale = False
        self.issues_changed.emit()

    # -- saving ------------------------------------------------------------------------------
    def snapshot(self) -> tuple[RowStore, int]:
        """A copy of the rows as they are now, safe to read on a worker thread while editing goes on."""
        snap = copy.copy(self.store)
        snap.order = self.store.order.copy()
        snap.overrides = dict(self.store.overrides)
        snap._cache = OrderedDict()
        snap._positions = None
        return snap, len(self._ops)

    def save_target(self) -> Path:
        return save_target(self.path)

    @staticmethod
    def write(snapshot: RowStore, target: Path, progress=None, cancelled=None) -> Path | None:
        """Worker side of a save: keep the original import once, then write atomically."""
        from engine.errors import DataError

        try:
            kept = keep_original(target) if target.exists() else None
            save_store(snapshot, target, progress, cancelled)
        except OSError as exc:  # a full disk, a read-only folder: the old file is still intact
            raise DataError(
                f"{target.name} could not be written ({exc.strerror or exc}); the file on disk is unchanged.",
                "Free some disk space or make the folder writable, then save again.",
            ) from None
        return kept

    def saved(self, target: Path, ops_in_snapshot: int) -> None:
        """UI side after the write: the journal keeps only edits made while saving."""
        later = self._ops[ops_in_snapshot:]
        if target != self.path:
            self.journal.discard()
            self.path = target
            self.journal = EditJournal(target)
        self.journal.start(carry=later)
        self._ops = later
        self._recovered = bool(later)
        if not later:
            self.undo.setClean()
        self.dirty_changed.emit(self.is_dirty())

    def discard_changes(self) -> None:
        """Closing without saving: the journal goes too."""
        self.journal.discard()

    def close(self) -> None:
        """Stop journaling; a journal with nothing unsaved in it is removed."""
        if self.is_dirty():
            self.journal.close()  # kept: the next open offers to recover it
        else:
            self.journal.discard()
