"""Reading data files of every common kind into Arrow tables, problems reported, the file untouched.

JSONL is read line by line so one bad line (invalid JSON, bytes that are not UTF-8) costs
only that line, with its line number; rows are gathered into Arrow in chunks, so a big file
never becomes a big list of Python objects. The other kinds go through `datasets`/pyarrow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError

FILE_KINDS = ("jsonl", "json", "csv", "tsv", "parquet", "text", "arrow")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
             ".parquet": "parquet", ".txt": "text", ".md": "text", ".text": "text"}
_CHUNK = 20_000
JSON_BLOCK = 32 << 20
"""Bytes per pyarrow JSON block: bigger blocks parse a large file about twice as fast as the 1 MiB default."""


@dataclass
class Problem:
    row: int | None
    """1-based record number in the file (None: the problem is about the whole file)."""
    line: int | None
    """1-based line number, for line-based files."""
    message: str
    kind: str
    severity: str = "error"
    """error: the row is skipped; warning: the row is used as it is (truncated, duplicate)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def where(self) -> str:
        if self.line is not None:
            return f"line {self.line}"
        return f"row {self.row}" if self.row is not None else "file"


@dataclass
class RawFile:
    path: Path
    kind: str
    table: Any
    """A `datasets.Dataset` of the parsed records (raw columns, before any shape is applied)."""
    row_numbers: list[int]
    line_numbers: list[int] | None
    problems: list[Problem] = field(default_factory=list)
    records: int = 0
    """Records in the file, parsed or not."""


def file_kind(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
            return "arrow"
        raise DataError(f"{path} is a folder but not one written by datasets.save_to_disk.", "Pass a data file.")
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"Cannot tell what kind of file {path.name} is.",
                        "Use .jsonl, .json, .csv, .tsv, .parquet or .txt, or a datasets.save_to_disk folder.")
    return kind


def read_file(path: str | Path, text_mode: str = "blank_lines") -> RawFile:
    """Parse a data file. `text_mode` for .txt: "blank_lines" (one document per paragraph) or "file"."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"Data file {path} does not exist.", "Check the path.")
    kind = file_kind(path)
    if kind != "arrow":
        try:
            if path.stat().st_size == 0:
                raise DataError(f"Data file {path} is empty.", "Add some rows.")
            with open(path, "rb") as handle:
                handle.read(1)
        except PermissionError:
            raise DataError(f"Cannot read {path}: permission denied.", "Check the file's permissions.") from None
    reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "tsv": _read_csv,
              "parquet": _read_parquet, "text": _read_text, "arrow": _read_arrow}[kind]
    raw = reader(path, text_mode) if kind == "text" else reader(path)
    raw.kind = kind
    if raw.records == 0:
        raise DataError(f"Data file {path} has no rows.", "Add some rows.")
    return raw


def _dataset_from_chunks(chunks: list[list[dict]]):
    import datasets

    parts = [datasets.Dataset.from_list(chunk) for chunk in chunks if chunk]
    if not parts:
        return datasets.Dataset.from_list([])
    try:
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    except ValueError:  # chunks with different columns: fall back to one table of JSON strings
        return datasets.Dataset.from_dict({"__json__": [json.dumps(r) for c in chunks for r in c]})


def _read_jsonl(path: Path) -> RawFile:
    return _read_jsonl_arrow(path) or _read_jsonl_lines(path)


def _read_jsonl_arrow(path: Path) -> RawFile | None:
    """pyarrow's multi-threaded reader, for the common case of a clean file: every line one JSON
    object, no blank lines (so row N is line N), consistent types. Anything else returns None."""
    import datasets
    import pyarrow as pa
    import pyarrow.json as pajson

    lines = _count_lines_if_all_objects(path)
    if lines is None:
        return None
    try:
        table = pajson.read_json(path, read_options=pajson.ReadOptions(block_size=JSON_BLOCK))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    n = table.num_rows
    if n == 0 or lines != n:
        return None
    numbers = list(range(1, n + 1))
    try:
        dataset = datasets.Dataset(table)
    except Exception:  # a schema datasets cannot hold: the line-by-line reader reports it row by row
        return None
    return RawFile(path, "jsonl", dataset, numbers, numbers, [], n)


def _count_lines_if_all_objects(path: Path) -> int | None:
    """Number of lines if every line starts with "{" (so none is blank), else None.

    pyarrow 26 crashes (SIGSEGV) on a file that is just `null`, so only files whose every line
    opens an object are handed to it. numpy over a memory map keeps this at disk speed.
    """
    import mmap

    with open(path, "rb") as handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return None
    with mapped:
        return _lines_if_all_objects(mapped)


def _lines_if_all_objects(mapped) -> int | None:
    import numpy as np

    # numpy views pin the map, so they live only inside this function.
    data = np.frombuffer(mapped, dtype=np.uint8)
    if data[0] != ord("{"):
        return None
    lines, step = 0, 1 << 26
    for start in range(0, len(data), step):
        newlines = np.flatnonzero(data[start:start + step] == ord("\n")) + start
        following = newlines[newlines + 1 < len(data)] + 1
        if not (data[following] == ord("{")).all():
            return None
        lines += len(newlines)
    return lines if data[-1] == ord("\n") else lines + 1


def _read_jsonl_lines(path: Path) -> RawFile:
    """Line by line: one bad line costs only that line, reported with its number."""
    problems, rows, row_numbers, line_numbers = [], [], [], []
    chunks: list[list[dict]] = []
    record = 0
    with open(path, "rb") as handle:
        for number, line_bytes in enumerate(handle, start=1):
            if not line_bytes.strip():
                continue
            record += 1
            try:
                line = line_bytes.rstrip(b"\r\n").decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(Problem(record, number, f"bytes that are not UTF-8 (byte {exc.start + 1} of the line)", "not_utf8"))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(record, number, f"invalid JSON: {exc.msg} at column {exc.colno}", "invalid_json"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem(record, number, f"wrong type: the line is a JSON {type(obj).__name__}, not an object", "wrong_type"))
                continue
            # Stored as JSON text: rows of one file may disagree on types, which Arrow columns cannot hold.
            rows.append({"__json__": line})
            row_numbers.append(record)
            line_numbers.append(number)
            if len(rows) >= _CHUNK:
                chunks.append(rows)
                rows = []
    chunks.append(rows)
    if record == 0:
        raise DataError(f"Data file {path} is empty.", "Add one JSON object per line.")
    return RawFile(path, "jsonl", _dataset_from_chunks(chunks), row_numbers, line_numbers, problems, record)


def _read_json(path: Path) -> RawFile:
    import datasets

    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} has bytes that are not UTF-8 (byte {exc.start + 1}).", "Save the file as UTF-8.") from None
    except json.JSONDecodeError as exc:
        hint = "It looks like JSON Lines: rename it to .jsonl." if exc.msg == "Extra data" else "Fix the JSON syntax."
        raise DataError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", hint) from None
    if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) != 1:
            raise DataError(f"{path} holds columns of different lengths {sorted(lengths)}.", "Make every column as long.")
        n = lengths.pop()
        records = [{k: obj[k][i] for k in obj} for i in range(n)]
    elif isinstance(obj, dict) and isinstance(obj.get("data") or obj.get("rows"), list):
        records = obj.get("data") or obj.get("rows")
    elif isinstance(obj, list):
        records = obj
    else:
        raise DataError(f"{path} is neither a list of records nor an object of columns.",
                        'Use [{"prompt": ..., "completion": ...}, ...] or {"prompt": [...], "completion": [...]}.')
    problems, good, numbers = [], [], []
    for i, rec in enumerate(records, start=1):
        if isinstance(rec, dict):
            good.append({"__json__": json.dumps(rec, ensure_ascii=False)})
            numbers.append(i)
        else:
            problems.append(Problem(i, None, f"wrong type: record is a {type(rec).__name__}, not an object", "wrong_type"))
    return RawFile(path, "json", datasets.Dataset.from_list(good), numbers, None, problems, len(records))


def _as_dataset(table, path: Path):
    """Wrap an Arrow table; column names must be non-empty and unique to be usable."""
    import datasets

    try:
        names = table.column_names
    except UnicodeDecodeError:
        raise DataError(f"{path.name} has a header that is not UTF-8 text.", "Save the file as UTF-8.") from None
    if any(not name.strip("\x00 \t") for name in names) or len(set(names)) != len(names):
        raise DataError(f"{path.name} has an empty or repeated column name in its header ({names[:8]}).",
                        "Give every column a distinct name in the first row.")
    try:
        return datasets.Dataset(table)
    except Exception as exc:  # datasets refuses some Arrow schemas with several error types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path.name} has columns that cannot be read ({reason}).", "Export it again with plain columns.") from None


def _read_csv(path: Path) -> RawFile:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        table = pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                               convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}", "Check quoting and the header row.") from None
    n = table.num_rows
    return RawFile(path, "csv", _as_dataset(table, path), list(range(1, n + 1)), None, [], n)


def _read_parquet(path: Path) -> RawFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file: {exc}", "Export it again.") from None
    n = table.num_rows
    return RawFile(path, "parquet", _as_dataset(table, path), list(range(1, n + 1)), None, [], n)


def _read_text(path: Path, text_mode: str) -> RawFile:
    import datasets

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path} line {line} has bytes that are not UTF-8.", "Save the file as UTF-8.") from None
    if text_mode == "file":
        docs, lines = [text], [1]
    else:
        docs, lines, current, start = [], [], [], 1
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                if not current:
                    start = number
                current.append(line)
            elif current:
                docs.append("\n".join(current))
                lines.append(start)
                current = []
        if current:
            docs.append("\n".join(current))
            lines.append(start)
    docs_lines = [(d, n) for d, n in zip(docs, lines, strict=True) if d.strip()]
    table = datasets.Dataset.from_dict({"text": [d for d, _ in docs_lines]})
    n = len(docs_lines)
    return RawFile(path, "text", table, list(range(1, n + 1)), [ln for _, ln in docs_lines], [], n)


def _read_arrow(path: Path) -> RawFile:
    import datasets

    try:
        table = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for damaged folders
        raise DataError(f"{path} cannot be opened as a saved dataset: {exc}", "Save it again with save_to_disk.") from None
    if isinstance(table, datasets.DatasetDict):
        if "train" not in table:
            raise DataError(f"{path} holds splits {list(table)} but no 'train' split.", "Save the split you want to train on.")
        table = table["train"]
    n = len(table)
    return RawFile(path, "arrow", table, list(range(1, n + 1)), None, [], n)


def iter_records(raw: RawFile, batch_size: int = 2_000):
    """Yield (row_number, line_number, record dict) for every parsed record, batch by batch."""
    index = 0
    for batch in raw.table.iter(batch_size=batch_size):
        columns = list(batch)
        count = len(batch[columns[0]]) if columns else 0
        for j in range(count):
            if columns == ["__json__"]:
                record = json.loads(batch["__json__"][j])
            else:
                record = {c: batch[c][j] for c in columns}
            line = raw.line_numbers[index] if raw.line_numbers is not None else None
            yield raw.row_numbers[index], line, record
            index += 1
