"""Prompt sets: a saved list of test prompts per project, run against the loaded models, results in a grid.

A quick regression check after every run: each model/adapter's replies are saved under its
label (engine.chat.store), so the grid shows this run next to the base model and earlier runs.
A set is an eval set file (engine.chat.prompt_sets): each prompt may have an expected answer and
a scorer, edited in the grid, and replies that pass or fail are coloured.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.chat.prompt_set_grid import PromptSetGrid
from engine.chat.prompt_sets import (
    PromptSet,
    delete_prompt_set,
    edit_item,
    list_prompt_sets,
    load_prompt_set,
    save_prompt_set,
)
from engine.chat.store import list_prompt_set_results, load_prompt_set_results, save_prompt_set_results
from engine.errors import UserError
from engine.eval.sets import EvalItem

NEWLINE = " \u23ce "
"""A prompt's line breaks in the one-prompt-per-line editor."""
REWORDED = 0.6
"""How alike (difflib ratio) an edited prompt must be to a removed one to keep its expected answer."""


def prompt_line(prompt: str) -> str:
    return NEWLINE.join(prompt.splitlines())


class PromptSetRun(QObject):
    """Sends a set's prompts one by one to one chat side and collects the replies."""

    progress = Signal(str, int, int)  # label, done, total
    finished = Signal(str, object)  # label, results

    def __init__(self, side, prompt_set: PromptSet, settings: dict, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.side, self.set, self.settings = side, prompt_set, settings
        self.label = side.adapter.currentText()
        self.results: list[dict] = []
        self._reply: str | None = None
        side.client.done.connect(self._on_done)
        side.client.error.connect(self._on_error)

    def start(self) -> None:
        self._next()

    def _next(self) -> None:
        if len(self.results) == len(self.set.prompts):
            self.side.client.done.disconnect(self._on_done)
            self.side.client.error.disconnect(self._on_error)
            self.finished.emit(self.label, self.results)
            return
        # The whole context: the system prompt and any earlier turns of a multi-turn item.
        messages = [dict(turn) for turn in self.set.items[len(self.results)].messages]
        self._reply = self.side.client.generate(messages, self.settings)
        self.progress.emit(self.label, len(self.results), len(self.set.prompts))

    def _on_done(self, reply_id: str, text: str, stats: dict) -> None:
        if reply_id == self._reply:
            self.results.append(
                {"prompt": self.set.prompts[len(self.results)], "reply": text, "stats": stats}
            )
            self._next()

    def _on_error(self, what: str, _kind: str, message: str, _hint: str) -> None:
        if what == self._reply:
            self.results.append(
                {"prompt": self.set.prompts[len(self.results)], "reply": f"(no reply: {message})"}
            )
            self._next()


class PromptSetsDialog(QDialog):
    def __init__(self, page, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Prompt sets")
        self.page = page
        self.project_dir = page.project.path
        self.current: PromptSet | None = None
        self.runs: list[PromptSetRun] = []
        self.sets = QListWidget(self)
        self.new_button = QPushButton("New set", self)
        self.delete_button = QPushButton("Delete", self)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("Name, e.g. regression-checks (the file prompt-sets/<name>.jsonl)")
        self.system = QLineEdit(self)
        self.system.setPlaceholderText("System prompt (optional)")
        self.prompts = QPlainTextEdit(self)
        self.prompts.setPlaceholderText(
            "One prompt per line (\u23ce marks a line break inside a prompt); "
            "expected answers and scorers are set in the grid below"
        )
        self.save_button = QPushButton("Save set", self)
        self.run_button = QPushButton("Run on the loaded models", self)
        self.run_button.setToolTip(
            "Each loaded side (both in compare mode) answers every prompt with the current "
            "sampling settings; the replies are saved under its name"
        )
        self.state = QLabel(self)
        self.grid = PromptSetGrid(self)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)

        left = QWidget(self)
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.sets, 1)
        row = QHBoxLayout()
        row.addWidget(self.new_button)
        row.addWidget(self.delete_button)
        column.addLayout(row)
        right = QWidget(self)
        form = QVBoxLayout(right)
        form.setContentsMargins(0, 0, 0, 0)
        form.addWidget(self.name)
        form.addWidget(self.system)
        form.addWidget(self.prompts, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.state, 1)
        form.addLayout(buttons)
        form.addWidget(self.grid, 2)
        form.addWidget(self.summary)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([220, 780])
        QVBoxLayout(self).addWidget(splitter)
        self.resize(1100, 720)

        self.sets.currentItemChanged.connect(self._on_set_chosen)
        self.new_button.clicked.connect(self.new_set)
        self.delete_button.clicked.connect(self._on_delete)
        self.save_button.clicked.connect(self.save_set)
        self.run_button.clicked.connect(self.run)
        self.grid.summaryChanged.connect(self.summary.setText)
        self.refresh()

    # ---- sets ------------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        self.sets.blockSignals(True)
        self.sets.clear()
        for summary in list_prompt_sets(self.project_dir):
            skipped = f", {summary.skipped} bad lines skipped" if summary.skipped else ""
            item = QListWidgetItem(
                f"{summary.name} ({summary.prompt_count}{skipped})"
                if not summary.problem
                else f"{summary.path.name}: {summary.problem}"
            )
            item.setData(Qt.ItemDataRole.UserRole, None if summary.problem else summary.slug)
            self.sets.addItem(item)
            if summary.slug == select:
                self.sets.setCurrentItem(item)
        self.sets.blockSignals(False)
        self._update_state()

    def new_set(self) -> None:
        self.current = None
        self.sets.clearSelection()
        self.name.clear()
        self.system.clear()
        self.prompts.clear()
        self._fill_grid()
        self._update_state()

    def save_set(self) -> bool:
        try:
            items = self._edited_items()
            saved = save_prompt_set(
                self.project_dir,
                self.name.text().strip() or "prompts",
                items,
                previous=self.current.name if self.current else None,
            )
        except UserError as exc:
            self.state.setText(f"{exc.message} {exc.hint}".strip())
            return False
        except ValueError as exc:
            self.state.setText(f"Not saved: {exc}.")
            return False
        self.current = saved
        self.name.setText(saved.name)
        self.refresh(select=saved.name)
        self._fill_grid()
        return True

    def _edited_items(self) -> list[EvalItem]:
        """The set as edited: prompts from the editor. A prompt keeps its item (expected answer,
        scorer, earlier turns) when its text is unchanged, or is a close rewording of one that
        is no longer there."""
        old = [self.grid.edited_item(row) for row in range(len(self.current.items))] if self.current else []
        lines = [line.strip() for line in self.prompts.toPlainText().splitlines() if line.strip()]
        by_text: dict[str, int] = {}
        for row, item in enumerate(old):
            by_text.setdefault(prompt_line(item.prompt), row)
        unmatched = [row for row in range(len(old)) if row not in {by_text.get(line) for line in lines}]
        typed = self.system.text().strip()
        # Unchanged, each item keeps its own system prompt (a hand-written set may give several).
        system = None if self.current and typed == self.current.system else typed
        items = []
        for line in lines:
            row = by_text.get(line)
            if row is not None:
                items.append(edit_item(old[row], old[row].prompt, old[row].expected, old[row].scorer, system))
                continue
            prompt = "\n".join(part.strip() for part in line.split(NEWLINE.strip()))
            similar = [
                (SequenceMatcher(None, line, prompt_line(old[r].prompt)).ratio(), r) for r in unmatched
            ]
            ratio, row = max(similar, default=(0.0, None))
            if row is None or ratio < REWORDED:
                items.append(edit_item(None, prompt, system=typed))  # a new prompt gets the set's
                continue
            unmatched.remove(row)
            items.append(edit_item(old[row], prompt, old[row].expected, old[row].scorer, system))
        return items

    def _on_set_chosen(self, item: QListWidgetItem | None, _previous=None) -> None:
        slug = item.data(Qt.ItemDataRole.UserRole) if item else None
        if not slug:
            return
        try:
            self.current = load_prompt_set(self.project_dir, slug)
        except UserError as exc:
            self.state.setText(exc.message)
            return
        self.name.setText(self.current.name)
        self.system.setText(self.current.system)
        self.prompts.setPlainText("\n".join(prompt_line(prompt) for prompt in self.current.prompts))
        notes = []
        if self.current.problems:
            first = self.current.problems[0]
            notes.append(f"{len(self.current.problems)} unusable lines left out (first: {first}).")
        if self.current.converted:
            notes.append(f"An older set: saving writes it as prompt-sets/{self.current.name}.jsonl.")
        self.state.setText(" ".join(notes))
        self._fill_grid()
        self._update_state()

    def _on_delete(self) -> None:
        if self.current is not None:
            delete_prompt_set(self.project_dir, self.current.slug)
            self.new_set()
            self.refresh()

    # ---- running and results ---------------------------------------------------------------
    def run(self) -> None:
        if not self.save_set() or self.current is None or not self.current.prompts:
            return
        settings = self.page.sampling.settings()
        sides = [side for side in self.page._active_sides() if side.ready() and not side.generating()]
        if settings is None or not sides:
            self.state.setText("Load a model in the Chat tab first (both sides in compare mode).")
            return
        self.runs = [PromptSetRun(side, self.current, settings, self) for side in sides]
        for run in self.runs:
            run.progress.connect(self._on_progress)
            run.finished.connect(self._on_run_finished)
            run.start()
        self._update_state()

    def running(self) -> bool:
        return bool(self.runs)

    def _on_progress(self, label: str, done: int, total: int) -> None:
        self.state.setText(f"{label}: {done} of {total} prompts answered…")

    def _on_run_finished(self, label: str, results: list) -> None:
        save_prompt_set_results(self.project_dir, self.current.slug, label, results)
        self.runs = [run for run in self.runs if run.label != label]
        self.state.setText("Done: replies saved." if not self.runs else self.state.text())
        self._fill_grid()
        self._update_state()

    def _fill_grid(self) -> None:
        replies: dict[str, dict[str, str]] = {}
        if self.current is not None:
            labels = list_prompt_set_results(self.project_dir, self.current.slug)
            labels.sort(key=lambda label: (not label.startswith("Base model"), label))  # the base model first
            for label in labels:
                try:
                    results = load_prompt_set_results(self.project_dir, self.current.slug, label)
                except UserError:
                    results = []
                replies[label] = {r.get("prompt"): r.get("reply", "") for r in results}
        self.grid.show_set(self.current.items if self.current else [], replies)

    def _update_state(self) -> None:
        self.delete_button.setEnabled(self.current is not None)
        self.run_button.setEnabled(not self.runs)

    def reply_at(self, row: int, label: str) -> str:
        """The grid's cell for a prompt and a model label (for tests)."""
        return self.grid.reply_at(row, label)
