"""One dataset row as the trainer sees it: the rendered text, trained tokens highlighted.

The highlight comes only from `Rendered.labels` and `Rendered.offsets` (the trainer's own
mask), never from a second guess at where the assistant turns are. Characters are classified
with numpy and the document is built one contiguous run of equal format at a time, so a
200k-character row shows in well under a frame budget of ~150 ms.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QPalette,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextOption,
)
from PySide6.QtWidgets import (
    QLabel,
    QPlainTextDocumentLayout,
    QPlainTextEdit,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.widgets.theme import muted
from engine.data.rendering import IGNORE_INDEX, Rendered

TOKEN_TINT_LIMIT = 4096  # above this many tokens, boundaries are not drawn (keeps big rows fast)
WARNING = "#d97706"  # amber: reads on light and dark
CUT = "#dc2626"
GREEN = "#22c55e"
# Format properties: TRAINED marks trained runs (read back by trained_char_ranges); MARKER marks
# the inserted "cut here" text, which is not part of the row.
TRAINED = QTextFormat.Property.UserProperty + 1
MARKER = QTextFormat.Property.UserProperty + 2
TRAINED_BIT, TINT_BIT, TAIL_BIT = 1, 2, 4


def _blend(base: QColor, over: QColor, amount: float) -> QColor:
    """`over` laid on `base` at `amount`, so tints follow the palette's lightness."""
    mix = [round(b + (o - b) * amount) for b, o in zip(base.getRgb()[:3], over.getRgb()[:3], strict=True)]
    return QColor(*mix)


class TrainedView(QWidget):
    """The rendered text of one row with the loss mask painted on it; or a one-line message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rendered: Rendered | None = None
        self._max_length = 0
        self._cut: int | None = None
        self._marker: tuple[int, int] | None = None  # (document position, length) of the marker
        self._u16: np.ndarray | None = None  # code point -> UTF-16 position, only for non-BMP text
        self.sides = None  # the SidesView of preference rows, made when first needed
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.legend = QLabel()
        self.body = QPlainTextEdit(readOnly=True)
        self.body.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.body.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.message = QLabel(wordWrap=True)
        self.message.setMargin(12)
        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 0, 0)
        for widget in (self.header, self.legend):
            widget.setContentsMargins(6, 2, 6, 2)
            column.addWidget(widget)
        column.addWidget(self.body)
        self._stack = QStackedWidget()
        self._stack.addWidget(self.message)
        self._stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._stack)
        self._apply_palette()
        self.show_message("No row selected")

    # ---- public API -------------------------------------------------------------------

    def show_rendered(self, rendered: Rendered, max_length: int) -> None:
        self._rendered, self._max_length = rendered, max_length
        self._render()
        self._stack.setCurrentIndex(1)

    def show_sides(self, sides: list[tuple[str, Rendered]], max_length: int) -> None:
        """A preference row: each side (engine.data.preference.render_sides) in a column of its own."""
        if self.sides is None:
            from app.data.sides_view import SidesView

            self.sides = SidesView()
            self._stack.addWidget(self.sides)
        self._rendered, self._cut, self._marker, self._u16 = None, None, None, None
        self.sides.show_sides(sides, max_length)
        self._stack.setCurrentWidget(self.sides)

    def show_message(self, text: str) -> None:
        """Replace the view by one line (loading, no model chosen, an error)."""
        self._rendered, self._cut, self._marker, self._u16 = None, None, None, None
        self.header.clear()
        self._swap_document(self._new_document())
        self.message.setText(text)
        self._stack.setCurrentIndex(0)

    def trained_char_ranges(self) -> list[tuple[int, int]]:
        """Merged (start, end) offsets into the row's text of the characters painted as trained."""
        ranges: list[tuple[int, int]] = []
        if self._rendered is None:
            return ranges

        def add(position: int, length: int) -> None:
            start, end = self._row_offset(position), self._row_offset(position + length)
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))

        block = self.body.document().begin()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                fragment = it.fragment()
                if fragment.charFormat().boolProperty(TRAINED):
                    add(fragment.position(), fragment.length())
                it += 1
            block = block.next()
            # A block separator (a newline of the row) is in no fragment; a block's char format
            # is that of the separator before it.
            if block.isValid() and block.charFormat().boolProperty(TRAINED):
                add(block.position() - 1, 1)
        return ranges

    def truncation_offset(self) -> int | None:
        """Offset in the row's text where truncation cuts; None when the row fits."""
        return self._cut

    # ---- rendering ------------------------------------------------------------------------

    def _render(self) -> None:
        rendered, max_length = self._rendered, self._max_length
        text, kept, total = rendered.text, len(rendered.input_ids), len(rendered.offsets)
        if total < kept or len(rendered.labels) != kept:  # a Rendered from before offsets existed
            self.show_message("This row carries no token offsets, so its mask cannot be shown.")
            return
        # fromiter over the flattened tuples is ~3x faster than asarray on a list of tuples.
        flat = chain.from_iterable(rendered.offsets)
        offsets = np.fromiter(flat, dtype=np.int64, count=2 * total).reshape(-1, 2)
        trained = np.fromiter(rendered.labels, dtype=np.int64, count=kept) != IGNORE_INDEX
        self._cut = int(offsets[kept, 0]) if total > kept else None
        codes = self._classify(len(text), offsets, trained)
        self._set_header(total, int(trained.sum()), max_length, total - kept)
        # '\r' would merge with a following '\n' into one block break and shift every offset; show
        # it as one visible character instead (the control picture U+240D is missing from most fonts).
        shown = text.replace("\r", "↵")
        self._u16 = None
        if len(shown.encode("utf-16-le")) != 2 * len(shown):  # surrogate pairs: map positions
            wide = np.frombuffer(shown.encode("utf-32-le"), dtype=np.uint32) > 0xFFFF
            self._u16 = np.concatenate(([0], np.cumsum(1 + wide)))
        self._swap_document(self._build_document(shown, codes))

    def _classify(self, length: int, offsets: np.ndarray, trained: np.ndarray) -> np.ndarray:
        """Per character: trained / token-tint / truncated-tail bits."""
        codes = np.zeros(length, dtype=np.uint8)
        spans = offsets[: len(trained)][trained]
        # +1 at each trained token's start, -1 at its end: a character is trained where the sum > 0.
        cover = np.bincount(spans[:, 0], minlength=length + 1)
        cover -= np.bincount(spans[:, 1], minlength=length + 1)
        codes[np.cumsum(cover[:length]) > 0] |= TRAINED_BIT
        if len(offsets) <= TOKEN_TINT_LIMIT:
            for start, end in offsets[1::2].tolist():  # every other token tinted: boundaries show
                codes[start:end] |= TINT_BIT
        if self._cut is not None:  # cut text is never trained
            codes[self._cut :] = TAIL_BIT | (codes[self._cut :] & TINT_BIT)
        return codes

    def _build_document(self, text: str, codes: np.ndarray) -> QTextDocument:
        # A detached document takes the whole insert without relayouting the editor each run.
        doc = self._new_document()
        cursor = QTextCursor(doc)
        cursor.beginEditBlock()
        formats = self._formats()
        bounds = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), len(text)]
        self._marker = None
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            if start == self._cut:
                self._insert_marker(cursor)
            if end > start:
                cursor.insertText(text[start:end], formats[int(codes[start])])
        if self._cut is not None and self._marker is None:  # cut at the end: empty tail tokens
            self._insert_marker(cursor)
        cursor.endEditBlock()
        return doc

    def _insert_marker(self, cursor: QTextCursor) -> None:
        marker = f" ✂ cut here (max length {self._max_length:,}) "
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(CUT))
        fmt.setForeground(QColor("white"))
        fmt.setProperty(MARKER, True)
        position = cursor.position()
        cursor.insertText(marker, fmt)
        self._marker = (position, cursor.position() - position)

    def _swap_document(self, doc: QTextDocument) -> None:
        old = self.body.document()
        ours = old.parent() is self  # the editor deletes its own first document itself
        self.body.setDocument(doc)
        if ours:
            old.deleteLater()

    def _new_document(self) -> QTextDocument:
        doc = QTextDocument(self)
        doc.setDocumentLayout(QPlainTextDocumentLayout(doc))
        doc.setDefaultFont(self.body.font())
        return doc

    def _formats(self) -> dict[int, QTextCharFormat]:
        palette = self.palette()
        base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
        green, red = QColor(GREEN), QColor(CUT)
        formats = {}
        for code in range(8):
            fmt = QTextCharFormat()
            tint = bool(code & TINT_BIT)
            if code & TAIL_BIT:
                fmt.setForeground(red)
                fmt.setFontStrikeOut(True)
                fmt.setBackground(_blend(base, red, 0.16 if tint else 0.10))
            elif code & TRAINED_BIT:
                fmt.setForeground(text)
                fmt.setBackground(_blend(base, green, 0.42 if tint else 0.30))
                fmt.setProperty(TRAINED, True)
            else:
                fmt.setForeground(QColor(muted(palette)))
                if tint:
                    fmt.setBackground(_blend(base, text, 0.07))
            formats[code] = fmt
        return formats

    def _set_header(self, total: int, trained: int, max_length: int, truncated: int) -> None:
        header = f"{total:,} tokens · {trained:,} trained (shown highlighted) · max length {max_length:,}"
        if truncated:
            header += f' · <span style="color:{WARNING}"><b>truncated: {truncated:,} tokens cut</b></span>'
        if not trained:
            header += f' · <span style="color:{WARNING}">nothing trained: the trainer skips this row</span>'
        self.header.setText(header)

    def _row_offset(self, position: int) -> int:
        """A document position back to a code point offset in the row's text."""
        if self._marker is not None and position > self._marker[0]:
            position = max(self._marker[0], position - self._marker[1])
        if self._u16 is not None:
            position = int(np.searchsorted(self._u16, position))
        return position

    # ---- theme ----------------------------------------------------------------------------

    def _apply_palette(self) -> None:
        swatch = _blend(self.palette().color(QPalette.ColorRole.Base), QColor(GREEN), 0.36).name()
        self.legend.setText(
            f'<span style="background:{swatch}">&nbsp;highlighted&nbsp;</span> = trained '
            "(assistant replies and their end-of-turn)"
        )
        self.legend.setStyleSheet(f"color: {muted(self.palette())};")
        self.message.setStyleSheet(f"color: {muted(self.palette())};")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
            if self._rendered is not None:
                self._render()
        super().changeEvent(event)
