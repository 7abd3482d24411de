"""Reading data files of every common kind into Arrow tables, problems reported, the file untouched.

JSONL (engine.data.jsonl) and JSON records are checked one by one, so one bad record (invalid
JSON, bytes that are not UTF-8, nesting too deep) costs only that record, with its number;
rows are gathered into Arrow in chunks, so a big file never becomes a big list of Python
objects. CSV/TSV cells are read as text; the other kinds go through `datasets`/pyarrow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError

FILE_KINDS = ("jsonl", "json", "csv", "tsv", "parquet", "text", "arrow")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".txt": "text",
    ".md": "text",
    ".text": "text",
}
_CHUNK = 20_000


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
        raise DataError(
            f"{path} is a folder but not one written by datasets.save_to_disk.", "Pass a data file."
        )
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"Cannot tell what kind of file {path.name} is.",
            "Use .jsonl, .json, .csv, .tsv, .parquet or .txt, or a datasets.save_to_disk folder.",
        )
    return kind


def read_file(path: str | Path, text_mode: str = "blank_lines") -> RawFile:
    """Parse a data file. `text_mode` for .txt: "blank_lines" (one document per paragraph) or "file"."""
    from engine.data.jsonl import read_jsonl
    from engine.data.source import check_source

    path = Path(path).expanduser()
    check_source(path)  # exists, reachable, a regular file or folder, readable, not empty
    kind = file_kind(path)
    if kind in ("jsonl", "json", "csv", "tsv", "text"):
        _refuse_utf16(path)
    reader = {
        "jsonl": read_jsonl,
        "json": _read_json,
        "csv": _read_csv,
        "tsv": _read_csv,
        "parquet": _read_parquet,
        "text": _read_text,
        "arrow": _read_arrow,
    }[kind]
    raw = reader(path, text_mode) if kind == "text" else reader(path)
    raw.kind = kind
    if raw.records == 0:
        raise DataError(f"Data file {path} has no rows.", "Add some rows.")
    return raw


def _refuse_utf16(path: Path) -> None:
    """Windows editors save "Unicode" as UTF-16: say so once, not once per line."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head in (b"\xff\xfe", b"\xfe\xff"):
        raise DataError(
            f"{path} is UTF-16 text; Whetstone reads UTF-8.",
            "Save it again as UTF-8 (in Notepad: Save As, Encoding: UTF-8).",
        )


def _dataset_from_chunks(chunks: list[list[dict]]):
    import datasets

    parts = [datasets.Dataset.from_list(chunk) for chunk in chunks if chunk]
    if not parts:
        return datasets.Dataset.from_list([])
    try:
        return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    except ValueError:  # chunks with different columns: fall back to one table of JSON strings
        return datasets.Dataset.from_dict({"__json__": [json.dumps(r) for c in chunks for r in c]})


def _count_lines_if_all_objects(path: Path) -> int | None:
    """Lines of a JSONL file pyarrow's reader may be given, else None (kept for benchmarks/)."""
    from engine.data.jsonl import scan_clean_jsonl

    scanned = scan_clean_jsonl(path)
    return None if scanned is None else scanned[0]


def _read_json(path: Path) -> RawFile:
    import datasets

    from engine.data import json_safety

    data, bad_byte = path.read_bytes(), None
    try:
        text = data.decode("utf-8-sig")  # a byte order mark (Windows editors) is fine
    except UnicodeDecodeError as exc:  # bad bytes inside strings cost only their record
        text, bad_byte = data.decode("utf-8-sig", errors="surrogateescape"), exc.start + 1
    try:
        try:
            obj = json.loads(text)
        except RecursionError:  # one record nested too deeply: read the list item by item
            if not text.lstrip().startswith("["):
                raise DataError(
                    f"{path} is {json_safety.TOO_DEEP}.",
                    "Flatten the data, or use a list of "
                    'records [{"prompt": ..., "completion": ...}, ...] so only that record is skipped.',
                ) from None
            obj = list(json_safety.iter_list_items(text))
    except json.JSONDecodeError as exc:
        if bad_byte is not None:
            raise DataError(
                f"{path} has bytes that are not UTF-8 (byte {bad_byte}; "
                "the file may be Latin-1/Windows-1252).",
                "Save the file as UTF-8.",
            ) from None
        hint = (
            "It looks like JSON Lines: rename it to .jsonl."
            if exc.msg == "Extra data"
            else "Fix the JSON syntax."
        )
        raise DataError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", hint
        ) from None
    if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) != 1:
            raise DataError(
                f"{path} holds columns of different lengths {sorted(lengths)}.", "Make every column as long."
            )
        n = lengths.pop()
        records = [{k: obj[k][i] for k in obj} for i in range(n)]
    elif isinstance(obj, dict) and isinstance(obj.get("data") or obj.get("rows"), list):
        records = obj.get("data") or obj.get("rows")
    elif isinstance(obj, list):
        records = obj
    else:
        raise DataError(
            f"{path} is neither a list of records nor an object of columns.",
            'Use [{"prompt": ..., "completion": ...}, ...] or {"prompt": [...], "completion": [...]}.',
        )
    problems, good, numbers = [], [], []
    for i, rec in enumerate(records, start=1):
        if isinstance(rec, json_safety.TooDeep) or json_safety.too_deep(rec):
            problems.append(Problem(i, None, json_safety.TOO_DEEP, "too_deep"))
        elif isinstance(rec, dict):
            line = json.dumps(rec, ensure_ascii=False)
            if bad_byte is not None and not _is_utf8(line):  # a byte kept apart by surrogateescape
                problems.append(
                    Problem(
                        i,
                        None,
                        "holds bytes that are not UTF-8 (the file may be "
                        "Latin-1/Windows-1252: save it as UTF-8)",
                        "not_utf8",
                    )
                )
                continue
            good.append({"__json__": line})
            numbers.append(i)
        else:
            problems.append(
                Problem(
                    i,
                    None,
                    f"wrong type: record is {json_safety.json_type(rec)}, not an object",
                    "wrong_type",
                )
            )
    return RawFile(path, "json", datasets.Dataset.from_list(good), numbers, None, problems, len(records))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_names(table, path: Path) -> None:
    """Column names must be UTF-8, non-empty and unique to be usable."""
    try:
        names = table.column_names
    except UnicodeDecodeError:
        raise DataError(
            f"{path.name} has a header that is not UTF-8 text.", "Save the file as UTF-8."
        ) from None
    if any(not name.strip("\x00 \t") for name in names) or len(set(names)) != len(names):
        raise DataError(
            f"{path.name} has an empty or repeated column name in its header ({names[:8]}).",
            "Give every column a distinct name in the first row.",
        )


def _as_dataset(table, path: Path):
    """Wrap an Arrow table whose column names are usable."""
    import datasets

    _check_names(table, path)
    try:
        return datasets.Dataset(table)
    except Exception as exc:  # datasets refuses some Arrow schemas with several error types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path.name} has columns that cannot be read ({reason}).", "Export it again with plain columns."
        ) from None


def _read_csv(path: Path) -> RawFile:
    """Every cell is text, as written ("007" stays "007", "4" is not a number); a row with bytes
    that are not UTF-8 is a problem of its own."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from engine.data.text_columns import drop_invalid_utf8

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    try:
        # The header first (types inferred from the first block are ignored), then every column as text.
        with pacsv.open_csv(
            path, parse_options=parse, convert_options=pacsv.ConvertOptions(check_utf8=False)
        ) as head:
            names = head.schema.names
        table = pacsv.read_csv(
            path,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=False, check_utf8=False, column_types=dict.fromkeys(names, pa.string())
            ),
        )
    except UnicodeDecodeError:
        raise DataError(
            f"{path.name} has a header that is not UTF-8 text (the file may be Latin-1/Windows-1252).",
            "Save the file as UTF-8.",
        ) from None
    except pa.ArrowInvalid as exc:
        raise DataError(
            f"{path} cannot be read as {'TSV' if delimiter == chr(9) else 'CSV'}: {exc}",
            "Check quoting and the header row.",
        ) from None
    n = table.num_rows
    _check_names(table, path)  # before any cell is looked at
    table, kept, problems = drop_invalid_utf8(table)
    return RawFile(path, "csv", _as_dataset(table, path), [i + 1 for i in kept], None, problems, n)


def _read_parquet(path: Path) -> RawFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.data.text_columns import drop_invalid_utf8

    try:
        table = pq.read_table(path, memory_map=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file: {exc}", "Export it again.") from None
    n = table.num_rows
    _check_names(table, path)  # before any cell is looked at
    table, kept, problems = drop_invalid_utf8(table)  # Parquet strings are not checked when read
    return RawFile(path, "parquet", _as_dataset(table, path), [i + 1 for i in kept], None, problems, n)


def _read_text(path: Path, text_mode: str) -> RawFile:
    """Paragraphs (or the whole file) as documents; with paragraphs, one that holds bytes that are
    not UTF-8 is a problem of its own and the others stay usable."""
    import datasets

    data = path.read_bytes()
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data  # a byte order mark is fine
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if text_mode == "file":
            line = data[: exc.start].count(b"\n") + 1
            raise DataError(
                f"{path} line {line} has bytes that are not UTF-8 (the file may be Latin-1/Windows-1252).",
                "Save the file as UTF-8.",
            ) from None
        text = data.decode("utf-8", errors="surrogateescape")  # bad bytes kept apart, found per paragraph
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
    good, numbers, good_lines, problems = [], [], [], []
    for doc, line in ((d, n) for d, n in zip(docs, lines, strict=True) if d.strip()):
        bad = _not_utf8_line(doc, line)
        if bad is not None:
            problems.append(Problem(len(numbers) + len(problems) + 1, bad[0], bad[1], "not_utf8"))
            continue
        good.append(doc)
        numbers.append(len(numbers) + len(problems) + 1)
        good_lines.append(line)
    table = datasets.Dataset.from_dict({"text": good})
    return RawFile(path, "text", table, numbers, good_lines, problems, len(numbers) + len(problems))


def _not_utf8_line(doc: str, first_line: int) -> tuple[int, str] | None:
    """(line, message) of the first line of a paragraph holding bytes that were not UTF-8."""
    if doc.isascii():
        return None
    for offset, line in enumerate(doc.split("\n")):
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as exc:  # a byte kept apart by surrogateescape
            start = len(line[: exc.start].encode("utf-8", errors="surrogateescape"))
            return first_line + offset, (
                f"not UTF-8 at byte {start + 1} of the line "
                "(the file may be Latin-1/Windows-1252: save it as UTF-8)"
            )
    return None


def _read_arrow(path: Path) -> RawFile:
    import datasets

    try:
        table = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for damaged folders
        raise DataError(
            f"{path} cannot be opened as a saved dataset: {exc}", "Save it again with save_to_disk."
        ) from None
    if isinstance(table, datasets.DatasetDict):
        if "train" not in table:
            raise DataError(
                f"{path} holds splits {list(table)} but no 'train' split.",
                "Save the split you want to train on.",
            )
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
