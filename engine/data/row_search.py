"""Find rows containing a text, over the Arrow table (vectorised) plus the rows edited since."""

from __future__ import annotations

import numpy as np

from engine.data.row_store import RowStore, row_text


def _string_leaves(array, parents: np.ndarray):
    """(string array, table row of each element) for every string found in nested columns."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        yield array, parents
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        # Elements of null lists have no parent index: drop them along with their rows.
        inner = pc.list_parent_indices(array).to_numpy()
        yield from _string_leaves(pc.list_flatten(array), parents[inner])
    elif pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            yield from _string_leaves(pc.struct_field(array, [i]), parents)


def matching_rows(store: RowStore, needle: str, case_sensitive: bool = False) -> np.ndarray:
    """A bool mask by row id: True where any text of the row (keys excluded) contains `needle`."""
    import pyarrow.compute as pc

    found = np.zeros(store._next_id, dtype=bool)
    if not needle:
        found[store.order] = True
        return found
    hits = np.zeros(store.table.num_rows, dtype=bool)
    for column in store.table.columns:
        for chunk_start, chunk in _chunks(column):
            parents = np.arange(chunk_start, chunk_start + len(chunk))
            for strings, rows in _string_leaves(chunk, parents):
                match = pc.match_substring(strings, needle, ignore_case=not case_sensitive)
                hits[rows[match.fill_null(False).to_numpy(zero_copy_only=False)]] = True
    # Base rows map to table rows; broken lines, edited and added rows are checked as text.
    index = store._table_index
    base = np.arange(store.base_rows)
    readable = index >= 0
    found[base[readable]] = hits[index[readable]]
    folded = needle if case_sensitive else needle.casefold()
    extra = set(store.overrides) | set(np.flatnonzero(~readable).tolist())
    for row_id in extra:
        text = row_text(store.peek(row_id))
        found[row_id] = folded in (text if case_sensitive else text.casefold())
    return found


def _chunks(column):
    start = 0
    for chunk in column.chunks:
        yield start, chunk
        start += len(chunk)
