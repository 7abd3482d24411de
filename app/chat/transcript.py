"""One conversation as a column of message blocks; a reply streams into the last one.

Assistant text is Markdown (Qt's own importer, raw HTML off, so a model's `<tags>` show as
written); code gets a monospace font and a background derived from the palette. While a
reply streams, chunks only collect in a list and the Markdown is rendered at most
RENDER_PER_SECOND times, so thousands of tiny chunks stay cheap.
"""

from __future__ import annotations

import copy

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QPalette,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextOption,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.verdict_bar import VerdictBar

RENDER_PER_SECOND = 20
ROLE_NAMES = {"user": "You", "assistant": "Model", "system": "System"}
ENDINGS = {
    "end_of_turn": "end of turn",
    "max_tokens": "hit the max new tokens",
    "stop_string": "stop string",
    "cancelled": "stopped by you",
    "error": "error",
}
MARKDOWN = QTextDocument.MarkdownFeature(
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value
    | QTextDocument.MarkdownFeature.MarkdownNoHTML.value
)


def stats_text(stats: dict | None) -> str:
    """'first token 0.41 s · 12.3 tokens/s · 87 tokens · ended: end of turn'; absent figures are left out."""
    stats = stats or {}
    parts = []
    if stats.get("time_to_first_token_s") is not None:
        parts.append(f"first token {stats['time_to_first_token_s']:.2f} s")
    if stats.get("tokens_per_second") is not None:
        parts.append(f"{stats['tokens_per_second']:.1f} tokens/s")
    if stats.get("new_tokens") is not None:
        count = stats["new_tokens"]
        parts.append(f"{count} token" + ("" if count == 1 else "s"))
    if stats.get("stop_reason"):
        reason = stats["stop_reason"]
        parts.append(f"ended: {ENDINGS.get(reason, reason.replace('_', ' '))}")
    return " · ".join(parts)


def code_background(palette: QPalette) -> QColor:
    """A tint of the text colour over the base: subtle on light and dark palettes alike."""
    base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
    mix = 0.09
    return QColor(
        *(round(b + (t - b) * mix) for b, t in zip(base.getRgb()[:3], text.getRgb()[:3], strict=True))
    )


def _is_code(block) -> bool:
    return block.isValid() and block.blockFormat().hasProperty(QTextFormat.Property.BlockCodeLanguage)


def render_markdown(document: QTextDocument, text: str, palette: QPalette) -> None:
    """Markdown into `document`, then code (blocks and inline) in the system monospace font on a tint."""
    document.setMarkdown(text, MARKDOWN)
    mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    tint = code_background(palette)
    cursor = QTextCursor(document)
    cursor.beginEditBlock()
    block = document.begin()
    while block.isValid():
        is_code = _is_code(block)
        if is_code:
            fmt = block.blockFormat()
            fmt.setBackground(tint)
            fmt.setNonBreakableLines(False)  # long lines wrap; the leading whitespace stays
            fmt.setLeftMargin(4)
            cursor.setPosition(block.position())
            cursor.setBlockFormat(fmt)
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            fmt = fragment.charFormat()
            families = fmt.fontFamilies() or []
            if is_code or fmt.fontFixedPitch() or "monospace" in families:
                fmt.setFontFamilies([mono.family(), "monospace"])
                fmt.setFontFixedPitch(True)
                if not is_code:
                    fmt.setBackground(tint)
                cursor.setPosition(fragment.position())
                cursor.setPosition(fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor)
                cursor.setCharFormat(fmt)
            it += 1
        block = block.next()
    cursor.endEditBlock()


class _Body(QTextBrowser):
    """Read-only text that is as tall as its content (the transcript scrolls, not the message)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)  # offline app: links are shown, never followed
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.viewport().setAutoFillBackground(False)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._on_size_changed)

    def _on_size_changed(self, size) -> None:
        self.setFixedHeight(int(size.height()) + 2 * self.frameWidth() + 1)


class _MessageView(QFrame):
    """Role, text and (for replies) a stats line; assistant replies can be edited in place."""

    def __init__(self, transcript: ChatTranscript, message: dict) -> None:
        super().__init__()
        self.transcript = transcript
        self.message = message
        self.streaming = False
        self.setAutoFillBackground(True)
        role = message.get("role", "")
        self.setBackgroundRole(
            QPalette.ColorRole.AlternateBase if role == "user" else QPalette.ColorRole.Base
        )
        self.role_label = QLabel()
        font = self.role_label.font()
        font.setBold(True)
        self.role_label.setFont(font)
        self.edit_button = QToolButton(text="Edit", objectName="edit", autoRaise=True)
        self.edit_button.setToolTip("Correct this reply; the corrected text is what the model sees next.")
        self.edit_button.clicked.connect(self._on_edit_clicked)
        header = QHBoxLayout()
        header.addWidget(self.role_label)
        header.addStretch(1)
        header.addWidget(self.edit_button)
        self.body = _Body()
        self.editor = QPlainTextEdit(objectName="editor")
        self.save_button = QPushButton("Save", objectName="save")
        self.cancel_button = QPushButton("Cancel", objectName="cancel")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.edit_row = QHBoxLayout()
        self.edit_row.addStretch(1)
        self.edit_row.addWidget(self.cancel_button)
        self.edit_row.addWidget(self.save_button)
        self.stats_label = QLabel(objectName="stats")
        self.stats_label.setWordWrap(True)  # unwrapped, its width would push the message past a narrow column
        self.stats_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = self.stats_label.font()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.85))
        self.stats_label.setFont(small)
        self.verdicts = VerdictBar()
        self.verdicts.chosen.connect(
            lambda verdict: transcript.judged.emit(transcript.index_of(self), verdict)
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.body)
        layout.addWidget(self.editor)
        layout.addLayout(self.edit_row)
        layout.addWidget(self.stats_label)
        layout.addWidget(self.verdicts)
        self._show_editor(False)
        self.render()

    def is_reply(self) -> bool:
        return self.message.get("role") == "assistant"

    def render(self) -> None:
        text = self.message.get("content", "")
        role = self.message.get("role", "")
        name = ROLE_NAMES.get(role, role.capitalize())
        self.role_label.setText(f"{name} · writing…" if self.streaming else name)
        if self.is_reply():
            if not text and self.streaming:
                self.body.setPlainText("…")  # typing
            else:
                render_markdown(self.body.document(), text, self.palette())
        else:
            self.body.setPlainText(text)
        line = stats_text(self.message.get("stats")) if "stats" in self.message else ""
        self.stats_label.setText(line)
        self.stats_label.setVisible(bool(line))
        self.update_edit_button()

    def update_edit_button(self) -> None:
        self.edit_button.setVisible(
            self.is_reply() and self.transcript.editable and not self.streaming and self.editor.isHidden()
        )
        self.update_verdicts()

    def update_verdicts(self) -> None:
        mode, label, indices = self.transcript.judging
        shown = (
            mode is not None
            and self in self.transcript._views
            and self.transcript.index_of(self) in indices
            and not self.streaming
            and self.editor.isHidden()
        )
        kept = self.message.get("kept")  # {"mode": a verdict bar mode, "text": where}: see mark_kept
        where = kept.get("text", "") if isinstance(kept, dict) and kept.get("mode") == mode else ""
        self.verdicts.set_mode(mode if shown else None, label, str(where))

    def _show_editor(self, on: bool) -> None:
        self.editor.setVisible(on)
        self.save_button.setVisible(on)
        self.cancel_button.setVisible(on)
        self.body.setVisible(not on)
        self.update_edit_button()

    def _on_edit_clicked(self) -> None:
        self.editor.setPlainText(self.message.get("content", ""))
        lines = self.message.get("content", "").count("\n") + 3
        self.editor.setFixedHeight(min(400, lines * self.editor.fontMetrics().lineSpacing() + 12))
        self._show_editor(True)
        self.editor.setFocus()

    def _on_save_clicked(self) -> None:
        text = self.editor.toPlainText()
        changed = text != self.message.get("content", "")
        self.message["content"] = text
        if changed:
            self.message.pop("kept", None)  # what was kept is the reply as it was
        self._show_editor(False)
        self.render()
        if changed:
            self.transcript.edited.emit(self.transcript.index_of(self), text)

    def _on_cancel_clicked(self) -> None:
        self._show_editor(False)


class ChatTranscript(QWidget):
    """A conversation: set it whole, or stream a reply into it with begin/append/end."""

    edited = Signal(int, str)  # message index, new text (the user corrected an assistant reply)
    judged = Signal(int, str)  # message index, verdict: "better" (compare mode), "good" or "bad"

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editable = False
        self.judging: tuple[str | None, str, frozenset[int]] = (None, "", frozenset())
        self._views: list[_MessageView] = []
        self._chunks: list[str] = []
        self._follow = True
        self.title_label = QLabel(objectName="title")
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        # A long run name is cut, not the reason one side of a comparison is wider than the other.
        self.title_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_title(title)
        self._column = QVBoxLayout()
        self._column.setContentsMargins(0, 0, 0, 0)
        self._column.setSpacing(4)
        self._column.addStretch(1)
        content = QWidget()
        content.setLayout(self._column)
        self.scroll = QScrollArea(widgetResizable=True)
        self.scroll.setWidget(content)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar = self.scroll.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addWidget(self.scroll, 1)
        self._render_timer = QTimer(self, singleShot=True, interval=1000 // RENDER_PER_SECOND)
        self._render_timer.timeout.connect(self._on_render_due)

    def set_title(self, text: str) -> None:
        self.title_label.setText(text)
        self.title_label.setToolTip(text)
        self.title_label.setVisible(bool(text))

    def set_messages(self, messages: list[dict]) -> None:
        self._render_timer.stop()
        self._chunks = []
        for view in self._views:
            self._column.removeWidget(view)
            view.hide()
            view.deleteLater()
        self._views = []
        for message in messages:
            self._add(copy.deepcopy(message))
        self._follow = True

    def messages(self) -> list[dict]:
        self._flush_chunks()
        return [copy.deepcopy(view.message) for view in self._views]

    def begin_reply(self) -> None:
        self._finish_streaming()
        view = self._add({"role": "assistant", "content": ""})
        view.streaming = True
        view.render()

    def append_chunk(self, text: str) -> None:
        if not self._views or not self._views[-1].streaming:
            self.begin_reply()
        self._chunks.append(text)
        if not self._render_timer.isActive():
            self._render_timer.start()

    def end_reply(self, text: str, stats: dict) -> None:
        if not self._views or not self._views[-1].streaming:
            self.begin_reply()
        self._render_timer.stop()
        self._chunks = []
        view = self._views[-1]
        view.streaming = False
        view.message["content"] = text
        view.message["stats"] = dict(stats or {})
        view.render()

    def set_editable(self, on: bool) -> None:
        self.editable = on
        for view in self._views:
            if not on and not view.editor.isHidden():
                view._on_cancel_clicked()
            view.update_edit_button()

    def set_judging(self, mode: str | None, label: str = "", indices=()) -> None:
        """Verdict buttons (VerdictBar modes "pair" or "rate") under the replies at these message indices."""
        self.judging = (mode, label, frozenset(indices))
        for view in self._views:
            view.update_verdicts()

    def mark_kept(self, index: int, content: str, mode: str, text: str) -> None:
        """Say under the reply at `index` where it was kept ("pair" or "rate" verdicts), if it still
        reads `content` (the chat may have changed while the row was being written)."""
        if index < len(self._views) and self._views[index].message.get("content") == content:
            view = self._views[index]
            view.message["kept"] = {"mode": mode, "text": text}
            view.update_verdicts()

    def index_of(self, view: _MessageView) -> int:
        return self._views.index(view)

    def _add(self, message: dict) -> _MessageView:
        view = _MessageView(self, message)
        self._column.insertWidget(self._column.count() - 1, view)
        view.show()  # now, not on the layout's queued show: sizes and tests see it at once
        self._views.append(view)
        view.update_verdicts()
        return view

    def _flush_chunks(self) -> bool:
        """Move collected chunks into the streaming message; True when there were any."""
        if not self._chunks or not self._views:
            return False
        view = self._views[-1]
        view.message["content"] = view.message.get("content", "") + "".join(self._chunks)
        self._chunks = []
        return True

    def _finish_streaming(self) -> None:
        if self._views and self._views[-1].streaming:
            self._flush_chunks()
            self._views[-1].streaming = False
            self._views[-1].render()

    def _on_render_due(self) -> None:
        self._flush_chunks()
        if self._views and self._views[-1].streaming:
            self._views[-1].render()

    def _on_scrolled(self, value: int) -> None:
        self._follow = value >= self.scroll.verticalScrollBar().maximum() - 8

    def _on_range_changed(self, _low: int, high: int) -> None:
        if self._follow:
            self.scroll.verticalScrollBar().setValue(high)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # code tints come from the palette
            for view in self._views:
                if view.is_reply() and not view.streaming:
                    view.render()
