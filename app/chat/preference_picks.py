"""Preference rows from the chat: the better reply of a compare-mode pair (DPO/ORPO), or a rated reply (KTO).

The verdict buttons sit under the replies (app.chat.verdict_bar). A verdict opens PickDialog, which
shows the exact record for the chosen dataset; the record then goes to the Data tab (page signal
recordForDataset), which adds it through its undo and journal when that dataset is open there.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from app.chat.pick_dialog import PickDialog
from app.infra.tasks import while_alive
from engine.data.reading import peek_columns
from engine.data.shapes import RowProblem, Shape, detect_shape, pair_record, rated_record
from engine.errors import DataError, UserError

PAIRS_DATASET = "preference-pairs.jsonl"
PAIR_COLUMNS = ["prompt", "chosen", "rejected"]
RATED_DATASET = "rated-replies.jsonl"
RATED_COLUMNS = ["prompt", "completion", "label"]


def dataset_shape(path: Path) -> Shape:
    """The shape the Data tab will find for this dataset, from its columns (no full read)."""
    path = Path(path)
    try:
        return detect_shape(peek_columns(path))
    except DataError as exc:
        raise DataError(f"{path.name}: {exc.message}", exc.hint) from None
    except (OSError, ValueError) as exc:  # unreadable, or a CSV header pyarrow cannot parse
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataError(f"{path.name} cannot be read: {reason}.", "Pick another dataset.") from None


def checked(record: dict, shape: Shape) -> dict:
    """The record, if training would take it: the same row checks as `data check` (same answers, empty)."""
    try:
        shape.normalise(record)
    except RowProblem as problem:
        hints = {
            "same_answers": "Edit the better reply, or skip this pair: both replies say the same.",
            "empty_assistant": "Write the reply first (Edit).",
        }
        raise DataError(f"This row would not train: {problem}.", hints.get(problem.kind, "")) from None
    return record


class PreferencePicks(QObject):
    """Keeps the verdict buttons of a ChatPage's transcripts up to date and turns a verdict into a row."""

    def __init__(self, page) -> None:
        super().__init__(page)
        self.page = page
        for index, side in enumerate(page.sides):
            side.transcript.judged.connect(
                lambda message, verdict, side_index=index: self.judge(side_index, message, verdict)
            )
            side.transcript.edited.connect(lambda *_args: self.refresh())  # a reply corrected to nothing

    def run_dialog(self, dialog: PickDialog) -> bool:
        """Show the dialog; True when the user adds the row (tests replace this)."""
        return bool(dialog.exec())

    # ---- which replies get buttons ------------------------------------------------------------
    @staticmethod
    def _replies(messages: list[dict]) -> list[int]:
        return [i for i, m in enumerate(messages) if m["role"] == "assistant"]

    @staticmethod
    def _usable(message: dict) -> bool:
        return (message.get("stats") or {}).get("stop_reason") != "error" and bool(message["content"].strip())

    def _pairs(self) -> list[tuple[int, int]]:
        """(left index, right index) of each pair of replies to the same turn, both usable."""
        left, right = (side.transcript.messages() for side in self.page.sides)
        return [
            (a, b)
            for a, b in zip(self._replies(left), self._replies(right), strict=False)
            if self._usable(left[a]) and self._usable(right[b])
        ]

    def refresh(self) -> None:
        page = self.page
        first, second = (side.transcript for side in page.sides)
        if page.project is None or page.project.problem or any(s.generating() for s in page.sides):
            first.set_judging(None)
            second.set_judging(None)
        elif page.compare.isChecked():
            pairs = self._pairs()
            first.set_judging("pair", "Left is better", [a for a, _b in pairs])
            second.set_judging("pair", "Right is better", [b for _a, b in pairs])
        else:
            messages = first.messages()
            first.set_judging("rate", "", [i for i in self._replies(messages) if self._usable(messages[i])])
            second.set_judging(None)

    # ---- a verdict ----------------------------------------------------------------------------
    def _prompt(self, messages: list[dict]) -> list[dict]:
        """The chat before a reply: the system prompt (if any) and the turns up to the user's last one."""
        system = self.page.sampling.system_prompt().strip()
        return ([{"role": "system", "content": system}] if system else []) + [
            {"role": m["role"], "content": m["content"]}
            for m in messages
            if m["role"] in ("user", "assistant")
        ]

    def judge(self, side_index: int, index: int, verdict: str) -> None:
        page = self.page
        if page.project is None or page.project.problem:
            return
        messages = page.sides[side_index].transcript.messages()
        prompt = self._prompt(messages[:index])
        mode = "pair" if verdict == "better" else "rate"
        kept = messages[index].get("kept")
        notes = []
        if isinstance(kept, dict) and kept.get("mode") == mode:
            notes.append(f"{kept.get('text')} already: Add writes a second row.")
        marks = [(side_index, index, "Kept as the chosen reply in {}")]  # what the chat says once added
        if verdict == "better":
            other = page.sides[1 - side_index].transcript.messages()
            pair = next((p for p in self._pairs() if p[side_index] == index), None)
            if pair is None:
                page.failed.emit(
                    "The other side has no reply to this prompt to compare with.",
                    "Send the prompt to both sides, then pick the better reply.",
                )
                return
            rejected = other[pair[1 - side_index]]["content"]
            marks.append((1 - side_index, pair[1 - side_index], "Kept as the rejected reply in {}"))
            if self._prompt(other[: pair[1 - side_index]]) != prompt:
                notes.append(
                    "The two sides' earlier turns differ: the prompt is the conversation of the better "
                    "reply (the rejected reply answered its own side's)."
                )
            notes.append("Preference pairs train DPO, ORPO and KTO runs (Train tab, method).")

            def build(shape: Shape, text: str) -> dict:
                return checked(pair_record(prompt, text, rejected, shape), shape)

            title, new, columns = "Keep the better reply", PAIRS_DATASET, PAIR_COLUMNS
            undo = "Add preference pair from chat"
        else:
            good = verdict == "good"

            def build(shape: Shape, text: str) -> dict:
                return checked(rated_record(prompt, text, good, shape), shape)

            title = f"Keep a {'good' if good else 'bad'} reply"
            marks = [(side_index, index, f"Kept as a {'good' if good else 'bad'} reply in {{}}")]
            notes.append("Rated replies train KTO runs (Train tab, method).")
            new, columns, undo = RATED_DATASET, RATED_COLUMNS, "Add rated reply from chat"
        dialog = PickDialog(
            title,
            build,
            messages[index]["content"],
            self._datasets(),
            page.project.path / "datasets" / new,
            columns,
            dataset_shape,
            " ".join(notes),
            editable=verdict == "better",
            add_text="Add pair" if verdict == "better" else "Add rated reply",
            parent=page,
        )
        if not self.run_dialog(dialog):
            return
        text = dialog.reply_text()
        try:
            dialog.record()  # the user may add with a dataset of another shape picked: say so, write nothing
        except UserError as exc:
            page.failed.emit(exc.message, exc.hint)
            return
        name = dialog.chosen().name
        contents = [page.sides[side].transcript.messages()[at]["content"] for side, at, _words in marks]

        def added() -> None:
            for (side, at, words), content in zip(marks, contents, strict=True):
                page.sides[side].transcript.mark_kept(at, content, mode, words.format(name))
            page.save_conversation()  # the marks are part of the chat

        page.recordForDataset.emit(
            dialog.chosen(), lambda shape: build(shape, text), columns, undo, while_alive(page, added)
        )

    def _datasets(self) -> list[Path]:
        project = self.page.project
        training = Path(project.dataset) if project.dataset else None
        return sorted((d.path for d in project.datasets), key=lambda path: path != training)
