"""A dataset being edited: the file's rows as a read-only Arrow table plus the edits made since.

Rows are never turned into Python objects up front: a row is decoded from Arrow when something
asks for it (the visible rows of a table, a save, a review). Every row has a stable id; `order`
lists the ids in file order. Ids below `base_rows` are the file's records; edited rows live in
`overrides`, added rows get new ids. A JSONL line that is not valid JSON stays a row of its own,
`{"__broken__": <the line's text>}`, so opening and saving a damaged file loses nothing.

Edits address rows by position (what a person sees), so an edit journal replays on the saved
file exactly as it happened (engine.data.edit_journal).
"""

from __future__ import annotations

import json
import stat
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.files import RawFile, read_file
from engine.data.jsonl import read_clean_jsonl
from engine.data.shapes import Shape, detect_shape
from engine.errors import DataError

BROKEN = "__broken__"
"""Key of a row that holds a line which is not a JSON object (its raw text)."""
_CACHE_ROWS = 4096


class RowStore:
    def __init__(
        self,
        path: Path,
        kind: str,
        table,
        broken: dict[int, str],
        line_numbers: np.ndarray | None,
        file_problems: list | None = None,
    ) -> None:
        self.path = path
        self.kind = kind
        self.table = table
        """pyarrow.Table of the parsed records (one `__json__` string column when rows disagree on types)."""
        self.base_rows = len(line_numbers) if line_numbers is not None else table.num_rows + len(broken)
        self.line_numbers = line_numbers
        """Per base id, the record's 1-based line in the file (line-based files only)."""
        self.options: dict[str, Any] = {"fmt": "auto", "columns": {}, "text_mode": "blank_lines"}
        """How the file was opened (shape choice, column mapping), to open it the same way again."""
        self.file_problems = list(file_problems or [])
        """Problems that are about records the store could not keep (non-JSONL files)."""
        self._broken = broken
        # base id -> table row (-1 for broken lines).
        self._table_index = _table_index(self.base_rows, broken)
        self.order = np.arange(self.base_rows, dtype=np.int64)
        self.overrides: dict[int, dict[str, Any]] = {}
        self._next_id = self.base_rows
        self._cache: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._positions: np.ndarray | None = None

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.order)

    def record(self, row_id: int) -> dict[str, Any]:
        """The row as a fresh dict (safe to modify)."""
        found = self.overrides.get(row_id)
        if found is None:
            found = self._cache.get(row_id)
            if found is None:
                found = self._decode(row_id)
                self._cache[row_id] = found
                if len(self._cache) > _CACHE_ROWS:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(row_id)
        return json.loads(json.dumps(found))

    def peek(self, row_id: int) -> dict[str, Any]:
        """Like `record` but shared: callers must not modify it (cheap, for display)."""
        found = self.overrides.get(row_id)
        if found is not None:
            return found
        found = self._cache.get(row_id)
        if found is None:
            found = self._cache[row_id] = self._decode(row_id)
            if len(self._cache) > _CACHE_ROWS:
                self._cache.popitem(last=False)
        return found

    def _decode(self, row_id: int) -> dict[str, Any]:
        index = int(self._table_index[row_id])
        if index < 0:
            return {BROKEN: self._broken[row_id]}
        if self.table.column_names == ["__json__"]:
            return json.loads(self.table.column(0)[index].as_py())
        return self.table.slice(index, 1).to_pylist()[0]

    def iter_records(self, batch: int = 4096):
        """(id, record) for every row in order; base rows are decoded a batch at a time."""
        json_column = self.table.column_names == ["__json__"]
        for start in range(0, len(self.order), batch):
            ids = self.order[start : start + batch]
            plain = ids[(ids < self.base_rows)]
            plain = plain[self._table_index[plain] >= 0]
            decoded: dict[int, Any] = {}
            if len(plain):
                rows = self._rows_at(self._table_index[plain])
                if json_column:
                    rows = [json.loads(r["__json__"]) for r in rows]
                decoded = dict(zip(plain.tolist(), rows, strict=True))
            for row_id in ids.tolist():
                if row_id in self.overrides:
                    yield row_id, self.overrides[row_id]
                elif row_id in decoded:
                    yield row_id, decoded[row_id]
                else:
                    yield row_id, self.peek(row_id)

    def _rows_at(self, indices: np.ndarray) -> list[dict[str, Any]]:
        first, last = int(indices[0]), int(indices[-1])
        if last - first == len(indices) - 1 and (np.diff(indices) == 1).all():
            return self.table.slice(first, len(indices)).to_pylist()  # the usual case, far cheaper than take
        return self.table.take(indices).to_pylist()

    def line_of(self, row_id: int) -> int | None:
        if self.line_numbers is None or row_id >= self.base_rows:
            return None
        return int(self.line_numbers[row_id])

    def _position_index(self) -> np.ndarray:
        if self._positions is None:
            self._positions = np.full(self._next_id, -1, dtype=np.int64)
            self._positions[self.order] = np.arange(len(self.order))
        return self._positions

    def position(self, row_id: int) -> int:
        """Where a row is now (0-based); raises KeyError for a deleted row."""
        index = self._position_index()
        if row_id >= len(index) or index[row_id] < 0:
            raise KeyError(row_id)
        return int(index[row_id])

    def positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Positions of many rows at once; -1 for deleted ones."""
        index = self._position_index()
        out = np.full(len(ids), -1, dtype=np.int64)
        known = ids < len(index)
        out[known] = index[ids[known]]
        return out

    def is_edited(self, row_id: int) -> bool:
        return row_id in self.overrides or row_id >= self.base_rows

    # -- editing (by position) --------------------------------------------------------------
    def set_record(self, position: int, record: dict[str, Any]) -> int:
        row_id = int(self.order[position])
        self.overrides[row_id] = record
        return row_id

    def insert(
        self, positions: list[int], records: list[dict[str, Any]] | None = None, ids: list[int] | None = None
    ) -> list[int]:
        """Put rows at `positions` (ascending, each counted in the order after insertion).

        New records get new ids; `ids` re-inserts rows that were deleted (undo) as they were.
        """
        if ids is None:
            ids = list(range(self._next_id, self._next_id + len(positions)))
            self._next_id += len(positions)
            for row_id, record in zip(ids, records or [], strict=True):
                self.overrides[row_id] = record
        self.order = _insert_many(self.order, positions, ids)
        self._positions = None
        return list(ids)

    def delete(self, positions: list[int]) -> list[int]:
        """Remove rows at `positions`; returns their ids (kept with their edits, for undo)."""
        positions = sorted(positions)
        ids = self.order[positions].tolist()
        self.order = np.delete(self.order, positions)
        self._positions = None
        return ids

    def apply(self, op: dict[str, Any]) -> None:
        """Replay one journal operation (see engine.data.edit_journal)."""
        if op["op"] == "set":
            for position, record in zip(op["positions"], op["records"], strict=True):
                self.set_record(position, record)
        elif op["op"] == "insert":
            self.insert(op["positions"], op["records"])
        elif op["op"] == "delete":
            self.delete(op["positions"])
        else:
            raise DataError(f"Unknown edit {op['op']!r} in the edit journal.", "Discard the journal.")

    def columns(self) -> list[str]:
        names = self.table.column_names
        if names != ["__json__"]:
            return list(names)
        keys: dict[str, None] = {}
        for _row_id, record in zip(range(200), (r for _i, r in self.iter_records(256)), strict=False):
            keys.update(dict.fromkeys(record))
        keys.pop(BROKEN, None)
        return list(keys)


def _table_index(base_rows: int, broken: dict[int, str]) -> np.ndarray:
    index = np.full(base_rows, -1, dtype=np.int64)
    good = np.ones(base_rows, dtype=bool)
    if broken:
        good[list(broken)] = False
    index[good] = np.arange(int(good.sum()))
    return index


def _insert_many(order: np.ndarray, positions: list[int], ids: list[int]) -> np.ndarray:
    out = np.empty(len(order) + len(ids), dtype=np.int64)
    mask = np.zeros(len(out), dtype=bool)
    mask[positions] = True
    out[mask] = ids
    out[~mask] = order
    return out


def open_store(
    path: str | Path, fmt: str = "auto", columns: dict[str, str] | None = None, text_mode: str = "blank_lines"
) -> tuple[RowStore, Shape]:
    """Open any file the data layer reads for editing; the shape is detected as for training.

    A clean JSONL file goes straight to pyarrow's multi-threaded reader (no `datasets` import,
    no per-row objects); anything else goes through `engine.data.files.read_file`.
    """
    path = Path(path).expanduser()
    store = _open_clean_jsonl(path) or _open_raw(path, text_mode)
    store.options = {"fmt": fmt, "columns": dict(columns or {}), "text_mode": text_mode}
    try:
        shape = detect_shape(store.columns(), fmt, columns)
    except DataError as exc:
        raise DataError(f"{path.name}: {exc.message}", exc.hint) from None
    return store, shape


def _open_clean_jsonl(path: Path) -> RowStore | None:
    import pyarrow as pa

    from engine.data.source import check_source

    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        return None
    if stat.S_ISDIR(check_source(path).st_mode):  # a FIFO, unreachable or empty file: one clear reason
        return None
    found = read_clean_jsonl(path)
    if found is None or not found[1]:
        return None
    table, lines = found
    # The parser's scratch blocks stay in the allocator's pools (about 1.5x the file) unless released.
    pa.default_memory_pool().release_unused()
    return RowStore(path, "jsonl", table, {}, np.arange(1, lines + 1, dtype=np.int64))


def _open_raw(path: Path, text_mode: str) -> RowStore:
    raw = read_file(path, text_mode)
    table = raw.table.data.table if hasattr(raw.table, "data") else raw.table
    if raw.kind != "jsonl":
        # Records of other kinds that could not be parsed are not rows; they stay file problems.
        lines = np.asarray(raw.line_numbers, dtype=np.int64) if raw.line_numbers is not None else None
        return RowStore(path, raw.kind, table, {}, lines, raw.problems)
    broken = _broken_lines(path, raw)
    lines = np.zeros(raw.records, dtype=np.int64)
    lines[np.asarray(raw.row_numbers, dtype=np.int64) - 1] = raw.line_numbers
    for problem in raw.problems:
        lines[problem.row - 1] = problem.line
    return RowStore(path, "jsonl", table, broken, lines)


def _broken_lines(path: Path, raw: RawFile) -> dict[int, str]:
    """base id -> text of each JSONL record the reader could not parse."""
    wanted = {p.line: p.row - 1 for p in raw.problems if p.line is not None and p.row is not None}
    found: dict[int, str] = {}
    if not wanted:
        return found
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number in wanted:
                found[wanted[number]] = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
    return found


def row_text(record: dict[str, Any]) -> str:
    """A row as one line of JSON (what is saved to JSONL, and what search looks at)."""
    if BROKEN in record:
        return record[BROKEN]
    return json.dumps(record, ensure_ascii=False)


def save_store(store: RowStore, path: str | Path, progress=None, cancelled=None) -> None:
    """Write every row to `path` (.jsonl or .parquet) atomically; broken lines are kept as they are."""
    from engine.errors import Cancelled
    from engine.util.files import atomic_write_bytes

    path = Path(path)
    suffix = path.suffix.lower()
    total = len(store)
    if suffix in (".jsonl", ".ndjson"):
        parts: list[str] = []
        for done, (_row_id, record) in enumerate(store.iter_records(), start=1):
            parts.append(row_text(record))
            if done % 20_000 == 0:
                if cancelled is not None and cancelled():
                    raise Cancelled()
                if progress is not None:
                    progress(done, total, "Saving")
        atomic_write_bytes(path, ("\n".join(parts) + ("\n" if parts else "")).encode("utf-8"))
    elif suffix == ".parquet":
        from engine.data.writing import write_parquet

        records = [r for _i, r in store.iter_records()]
        if any(BROKEN in r for r in records):
            raise DataError(
                "Some rows are lines that are not valid JSON; Parquet cannot hold them.",
                "Fix or drop the broken lines first (Problems panel), or export as JSONL.",
            )
        import pyarrow as pa

        try:
            write_parquet(path, records)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"The rows do not fit one Parquet table: {str(exc).splitlines()[0]}",
                "Give every row the same field types, or save as JSON Lines (Export…).",
            ) from None
    else:
        raise DataError(
            f"Cannot save data as {suffix or 'a file without a suffix'}.", "Use .jsonl or .parquet."
        )
