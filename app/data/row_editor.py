"""The dataset editor's row editor: one raw record, as form fields or as JSON, committed on pause.

The editor works on the record exactly as stored in the file. Fields the shape does not use
stay untouched, values left alone are written back as they were, and every emit carries the
whole new record, so the caller only has to replace the row.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.data.pair_fields import PairForm, prompt_is_turns
from app.data.turn_card import MISSING, FieldBox, TurnCard
from engine.data.shapes import FIELDS, PREFERENCE_SHAPES, ROLES, SHAREGPT_ROLES

DEBOUNCE_MS = 700
BROKEN = "__broken__"
# Conversation shapes: the field holding the turns, the keys inside a turn, the role names.
CONVERSATIONS = {
    "messages": ("messages", "role", "content", ROLES),
    "sharegpt": ("conversations", "from", "value", ("system", "human", "gpt")),
}
PROMPT_TURNS = ("prompt", "role", "content", ROLES)
"""A preference row's prompt given as messages (TRL's conversational form)."""


class RowEditor(QWidget):
    edited = Signal(object)  # the complete new record (a new dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._committed: dict | None = None  # the last record set or emitted
        self._shape, self._columns = "text", {}
        self.cards: list[TurnCard] = []
        self.fields: dict[str, Any] = {}  # FieldBox, or a pair form's AnswerBox and LabelToggle
        self._turns: tuple | None = None  # CONVERSATIONS[shape] or PROMPT_TURNS: what the cards edit
        self._spare: list[TurnCard] = []  # hidden cards kept for the next longer row
        self._built: tuple | None = None  # the (shape, columns, turns) the widgets were built for
        self._layout = QVBoxLayout()
        self._loading = False
        self.add_button: QPushButton | None = None  # when the row has turn cards
        self._forced_raw = False
        self._raw_shown = ""
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.commit)

        self.title = QLabel()
        self.title.setStyleSheet("font-weight: bold;")
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #c77c00;")
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.raw_edit = QPlainTextEdit()
        self.raw_edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.raw_edit.textChanged.connect(self._on_raw_changed)
        self.raw_error = QLabel()
        self.raw_error.setStyleSheet("color: #d32f2f;")
        self.raw_error.setWordWrap(True)  # a narrow editor must not clip the position of the error
        self.raw_error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Replace the row with this JSON")
        self.apply_button.clicked.connect(self._on_apply_clicked)
        raw_page = QWidget()
        raw_layout = QVBoxLayout(raw_page)
        raw_layout.addWidget(self.raw_edit, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.raw_error, 1)
        bottom.addWidget(self.apply_button)
        raw_layout.addLayout(bottom)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.scroll, "Fields")
        self.tabs.addTab(raw_page, "Raw JSON")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.note)
        layout.addWidget(self.tabs, 1)
        self.set_record(None, "text")

    # --- public API -------------------------------------------------------------------------

    def set_record(
        self,
        record: dict | None,
        shape_name: str,
        columns: dict[str, str] | None = None,
        label: str = "",
    ) -> None:
        """Show `record` (None: nothing selected); a pending edit of the previous one is committed first."""
        self.commit()
        columns = dict(columns or {})
        same = (
            record is not None
            and shape_name == self._shape
            and columns == self._columns
            and self._committed is not None
            and record == self.record()
        )
        self._shape, self._columns = shape_name, columns
        self._committed = copy.deepcopy(record)
        self.title.setText(label if record is not None else "Select a row")
        self.title.setEnabled(record is not None)
        # The caller re-setting what is shown (e.g. after `edited`) keeps the widgets, focus, cursor.
        if not same:
            self._show(self._committed)
        if self.tabs.currentIndex() == 1:  # else switching to the Raw JSON tab fills it
            self._reset_raw()

    def record(self) -> dict | None:
        """The record as shown in the fields, including typing not yet committed."""
        base = self._committed
        if base is None or BROKEN in base or self._built is None:
            return copy.deepcopy(base)
        new = dict(base)
        if self._turns is not None:
            key = self._key(self._turns[0])
            turns = [card.turn() for card in self.cards]
            if turns or base.get(key) is not None:  # a missing or null list stays so until a turn is added
                new[key] = turns
        for name, box in self.fields.items():
            value = box.value()
            if value is not MISSING:
                new[self._key(name)] = value
        return new

    def commit(self) -> bool:
        """Emit `edited` if what is shown differs from the last set or committed record."""
        self._timer.stop()
        current = self.record()
        if current is None or current == self._committed:
            return False
        self._committed = current  # before emitting: a slot may call set_record
        self.edited.emit(copy.deepcopy(current))
        return True

    # --- building the fields ----------------------------------------------------------------

    def _key(self, field: str) -> str:
        return self._columns.get(field, field)

    def _show(self, record: dict | None) -> None:
        """Fill the fields with `record`, reusing the widgets built for the same shape and columns."""
        problem = self._problem(record)
        self.tabs.setEnabled(record is not None)
        self.tabs.setTabEnabled(0, not problem)  # (None disables the whole tab widget instead)
        self.note.setText(problem)
        self.note.setVisible(bool(problem))
        if record is None or problem:
            self._clear()
            if problem:
                self._forced_raw = self._forced_raw or self.tabs.currentIndex() == 0
                with QSignalBlocker(self.tabs):
                    self.tabs.setCurrentIndex(1)
            return
        if self._forced_raw:  # back to the fields once the row can be shown in them again
            self._forced_raw = False
            with QSignalBlocker(self.tabs):
                self.tabs.setCurrentIndex(0)
        self._loading = True  # filling the boxes is not typing
        try:
            turns = CONVERSATIONS.get(self._shape)
            if self._shape in PREFERENCE_SHAPES and prompt_is_turns(record, self._columns):
                turns = PROMPT_TURNS
            if self._built != (self._shape, self._columns, turns):
                self._clear()
                self._build(turns)
            self._load(record)
        finally:
            self._loading = False
        self.scroll.verticalScrollBar().setValue(0)

    def _clear(self) -> None:
        self.cards, self.fields, self._spare, self._built, self._turns = [], {}, [], None, None
        self.add_button = None
        old = self.scroll.takeWidget()
        if old is not None:
            old.deleteLater()  # not at once: this may run inside one of its widgets' slots

    def _build(self, turns: tuple | None) -> None:
        content = QWidget()
        self._layout = layout = QVBoxLayout(content)
        layout.setContentsMargins(6, 6, 6, 6)
        self._turns = turns
        if self._shape in PREFERENCE_SHAPES:
            form = PairForm(self._shape, self._columns, prompt_turns=turns is not None)
            self.fields = form.fields
            for box in form.text_boxes():
                self._watch(box)
            if "label" in self.fields:
                self.fields["label"].changed.connect(self._on_role_changed)  # a click is a whole edit
            if form.add_button is not None:
                self._layout, self.add_button = form.turns_layout, form.add_button
                self.add_button.clicked.connect(self._on_add_clicked)
            layout.addWidget(form)
        elif turns is not None:
            self.add_button = QPushButton("Add turn")
            self.add_button.clicked.connect(self._on_add_clicked)
            layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
        else:
            for name in FIELDS[self._shape]:
                key = self._key(name)
                title = QLabel(name if key == name else f"{name}  ({key})")
                title.setStyleSheet("font-weight: bold;")
                self.fields[name] = box = FieldBox()
                self._watch(box)
                layout.addWidget(title)
                layout.addWidget(box)
        layout.addStretch(1)
        self.scroll.setWidget(content)
        self._built = (self._shape, self._columns, turns)

    def _load(self, record: dict) -> None:
        for name, box in self.fields.items():
            box.load(record.get(self._key(name), MISSING))
        if self._turns is None:
            return
        turns = record.get(self._key(self._turns[0])) or []
        for card, turn in zip(self.cards, turns, strict=False):
            card.load(turn)
        for turn in turns[len(self.cards) :]:
            self._append_turn(turn)
        # Cards past the end wait, hidden and right after the shown ones, for a longer row.
        for card in self.cards[len(turns) :]:
            card.hide()
            self._spare.append(card)
        del self.cards[len(turns) :]
        self._renumber()

    def _problem(self, record: dict | None) -> str:
        """Why the fields cannot show this record, or ""."""
        if record is None:
            return ""
        if BROKEN in record:
            return "This line is not valid JSON: fix it in Raw JSON."
        if self._shape not in FIELDS:
            return f"Unknown row shape {self._shape!r}: edit the row in Raw JSON."
        if self._shape in CONVERSATIONS:
            key = self._key(CONVERSATIONS[self._shape][0])
            turns = record.get(key)
            if turns is not None and not isinstance(turns, list):
                return f"{key!r} is {type(turns).__name__}, not a list of turns: fix it in Raw JSON."
        return ""

    def _watch(self, box: FieldBox) -> None:
        box.edit.textChanged.connect(self._on_text_changed)
        box.edit.focusLost.connect(self._on_focus_lost)

    def _append_turn(self, turn: Any) -> TurnCard:
        """Show one more turn, in a spare card if there is one (the shown cards come first)."""
        if self._spare:
            card = self._spare.pop()
            card.load(turn)
            self._layout.removeWidget(card)
        else:
            _field, role_key, content_key, roles = self._turns
            card = TurnCard(turn, roles, role_key, content_key)
            self._watch(card.content)
            card.roleChanged.connect(self._on_role_changed)
            card.moveRequested.connect(self._on_move_requested)
            card.removeRequested.connect(self._on_remove_requested)
        self._layout.insertWidget(len(self.cards), card)
        card.show()  # now, not on the next event loop pass: record() and tests see it at once
        self.cards.append(card)
        return card

    def _renumber(self) -> None:
        for i, card in enumerate(self.cards):
            card.set_position(i, len(self.cards))

    def _next_role(self) -> str:
        """A new turn answers the last one: user after assistant or system, assistant after user."""
        roles = self._turns[3]
        last = self.cards[-1].role() if self.cards else None
        standard = SHAREGPT_ROLES.get(last.lower()) if isinstance(last, str) else None
        return roles[2] if standard == "user" else roles[1]

    # --- raw JSON ---------------------------------------------------------------------------

    def _reset_raw(self) -> None:
        """Show the current record as JSON, dropping raw text not applied."""
        record = self.record()
        if record is None:
            text = ""
        elif BROKEN in record and isinstance(record[BROKEN], str):
            text = record[BROKEN]
        else:
            text = json.dumps(record, indent=2, ensure_ascii=False)
        self._raw_shown = text
        self.raw_edit.setPlainText(text)
        self.raw_error.clear()
        self.apply_button.setEnabled(False)

    def _on_raw_changed(self) -> None:
        self.apply_button.setEnabled(self.raw_edit.toPlainText() != self._raw_shown)
        self.raw_error.clear()

    def _on_apply_clicked(self) -> None:
        try:
            parsed = json.loads(self.raw_edit.toPlainText())
        except json.JSONDecodeError as exc:
            self.raw_error.setText(f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
            return
        if not isinstance(parsed, dict):
            self.raw_error.setText(f"A row must be a JSON object {{...}}, not {type(parsed).__name__}.")
            return
        self._timer.stop()
        self._committed = parsed
        self._show(parsed)
        self._reset_raw()
        self.edited.emit(copy.deepcopy(parsed))

    def _on_tab_changed(self, index: int) -> None:
        if index == 1:
            self.commit()  # field typing is saved before the JSON view shows it
        self._reset_raw()

    # --- edits ------------------------------------------------------------------------------

    def _on_text_changed(self) -> None:
        if not self._loading:
            self._timer.start()  # restarts: commit after a pause in typing

    def _on_focus_lost(self) -> None:
        if self._timer.isActive():
            self.commit()

    def _on_role_changed(self) -> None:
        if not self._loading:
            self.commit()

    def _on_add_clicked(self) -> None:
        _field, role_key, content_key, _roles = self._turns
        card = self._append_turn({role_key: self._next_role(), content_key: ""})
        self._renumber()
        card.content.edit.setFocus()
        QTimer.singleShot(0, self._on_turn_added)  # once the layout has made room for it
        self.commit()

    def _on_turn_added(self) -> None:
        if self._shape in PREFERENCE_SHAPES and self.cards:  # the prompt's cards: the answers follow them
            self.scroll.ensureWidgetVisible(self.cards[-1])
            return
        bar = self.scroll.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_move_requested(self, card: TurnCard, step: int) -> None:
        i, j = self.cards.index(card), self.cards.index(card) + step
        if not 0 <= j < len(self.cards):
            return
        self.cards[i], self.cards[j] = self.cards[j], self.cards[i]
        self._layout.removeWidget(card)
        self._layout.insertWidget(j, card)
        self._renumber()
        self.commit()

    def _on_remove_requested(self, card: TurnCard) -> None:
        self.cards.remove(card)
        self._layout.removeWidget(card)
        card.hide()
        card.deleteLater()  # not at once: we are inside its button's click
        self._renumber()
        self.commit()
