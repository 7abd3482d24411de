"""The Chat tab's widgets on their own: transcript, sampling panel, composer."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton, QToolButton

from app.chat.composer import ChatComposer
from app.chat.sampling_panel import SamplingPanel
from app.chat.transcript import ChatTranscript, stats_text
from engine.chat.loading import GenerationSettings

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Show me <b>code</b>"},
    {
        "role": "assistant",
        "content": "Here:\n\n```python\ndef f(x):\n    return x + 1\n```\n",
        "stats": {"new_tokens": 12, "stop_reason": "end_of_turn"},
    },
]


@pytest.fixture
def transcript(qtbot):
    widget = ChatTranscript("Base: SmolLM2-135M")
    qtbot.addWidget(widget)
    widget.resize(500, 400)
    widget.show()
    return widget


def test_transcript_round_trip_and_roles(transcript):
    transcript.set_messages(CONVERSATION)
    assert transcript.messages() == CONVERSATION
    roles = [view.role_label.text() for view in transcript._views]
    assert roles == ["System", "You", "Model"]
    user_body = transcript._views[1].body
    assert user_body.toPlainText() == "Show me <b>code</b>"  # plain text, not HTML
    transcript.set_messages([])
    assert transcript.messages() == []


def test_thousands_of_chunks_are_rendered_a_few_times_not_per_chunk(transcript, qtbot, monkeypatch):
    # What keeps streaming cheap: chunks are collected and rendered on a timer. (The time it takes
    # is measured by benchmarks/hot_paths.py.)
    transcript.set_messages(CONVERSATION[:2])
    transcript.begin_reply()
    view = transcript._views[-1]
    assert view.body.toPlainText() == "…"
    renders = []
    real_render = view.render
    monkeypatch.setattr(view, "render", lambda: renders.append(1) or real_render())
    chunks = [f"word{i} " if i % 50 else "\n\n" for i in range(2000)]
    for chunk in chunks:
        transcript.append_chunk(chunk)
    assert renders == [] and view.body.toPlainText() == "…"  # nothing rendered per chunk
    assert transcript.messages()[-1]["content"] == "".join(chunks)
    qtbot.waitUntil(lambda: "word1999" in view.body.toPlainText(), timeout=2000)
    assert 1 <= len(renders) <= 3
    transcript.end_reply("".join(chunks), {"new_tokens": 2000, "stop_reason": "max_tokens"})
    last = transcript.messages()[-1]
    assert last["content"] == "".join(chunks)
    assert last["stats"]["stop_reason"] == "max_tokens"


def test_code_block_is_monospace_on_a_tint(transcript):
    transcript.set_messages(CONVERSATION)
    document = transcript._views[-1].body.document()
    block = document.findBlock(document.find("return x + 1").position())
    assert block.text() == "    return x + 1"  # whitespace kept
    fmt = block.begin().fragment().charFormat()
    assert fmt.fontFixedPitch()
    assert block.blockFormat().background().style() != Qt.BrushStyle.NoBrush
    prose = document.findBlock(document.find("Here:").position())
    assert not prose.begin().fragment().charFormat().fontFixedPitch()


@pytest.mark.parametrize(
    "reason, ending",
    [
        ("end_of_turn", "ended: end of turn"),
        ("cancelled", "ended: stopped by you"),
        ("max_tokens", "ended: hit the max new tokens"),
        ("stop_string", "ended: stop string"),
        ("error", "ended: error"),
    ],
)
def test_stats_line(reason, ending):
    stats = {
        "prompt_tokens": 20,
        "new_tokens": 87,
        "time_to_first_token_s": 0.41,
        "seconds": 7.1,
        "tokens_per_second": 12.34,
        "stop_reason": reason,
    }
    assert stats_text(stats) == f"first token 0.41 s · 12.3 tokens/s · 87 tokens · {ending}"


def test_stats_line_leaves_out_unknown_figures(transcript):
    stats = {
        "new_tokens": 1,
        "time_to_first_token_s": None,
        "tokens_per_second": None,
        "stop_reason": "cancelled",
    }
    assert stats_text(stats) == "1 token · ended: stopped by you"
    transcript.begin_reply()
    transcript.append_chunk("Hi")
    transcript.end_reply("Hi", stats)
    label = transcript._views[-1].findChild(QLabel, "stats")
    assert label.text() == "1 token · ended: stopped by you" and label.isVisibleTo(transcript)


def test_editing_a_reply_emits_edited(transcript, qtbot):
    transcript.set_messages(CONVERSATION)
    view = transcript._views[-1]
    button = view.findChild(QToolButton, "edit")
    assert not button.isVisibleTo(transcript)
    transcript.set_editable(True)
    assert button.isVisibleTo(transcript)
    assert not transcript._views[1].findChild(QToolButton, "edit").isVisibleTo(transcript)
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    editor = view.findChild(QPlainTextEdit, "editor")
    assert editor.toPlainText() == CONVERSATION[-1]["content"]
    editor.setPlainText("A **better** answer.")
    with qtbot.waitSignal(transcript.edited) as blocker:
        qtbot.mouseClick(view.findChild(QPushButton, "save"), Qt.MouseButton.LeftButton)
    assert blocker.args == [2, "A **better** answer."]
    assert transcript.messages()[2]["content"] == "A **better** answer."
    assert view.body.toPlainText() == "A better answer."


def test_sampling_defaults_match_the_engine(qtbot):
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    assert panel.settings() == GenerationSettings().to_dict()
    assert panel.errors() == []
    assert panel.system_prompt() == ""


def test_sampling_invalid_shows_the_engine_message(qtbot):
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    panel.show()
    with qtbot.waitSignal(panel.changed):
        panel.top_p.setValue(0.0)
    assert panel.settings() is None
    assert "top_p" in panel.errors()[0]
    label = panel.findChild(QLabel, "error")
    assert label.isVisible() and label.text() == panel.errors()[0]
    panel.top_p.setValue(0.9)
    assert panel.settings()["top_p"] == 0.9 and not label.isVisible()


def test_sampling_seed_stop_strings_and_reset(qtbot):
    panel = SamplingPanel()
    qtbot.addWidget(panel)
    panel.set_settings(
        {"temperature": 0.7, "seed": 42, "stop_strings": ["User:", "###"], "min_new_tokens": 3}
    )
    data = panel.settings()
    assert data["temperature"] == 0.7 and data["seed"] == 42 and data["min_new_tokens"] == 3
    assert data["stop_strings"] == ["User:", "###"]
    panel.seed_fixed.setChecked(False)
    assert "seed" not in panel.settings()
    panel.seed_fixed.setChecked(True)
    panel.seed.setValue(7)
    assert panel.settings()["seed"] == 7
    panel.stop_strings.setPlainText("END\n\n  \n<|user|>\n")
    assert panel.settings()["stop_strings"] == ["END", "<|user|>"]
    panel.set_system_prompt("Be kind.")
    panel.reset_button.click()
    assert panel.settings() == GenerationSettings().to_dict()
    assert panel.system_prompt() == "Be kind."  # Reset is for the sampling settings only


@pytest.fixture
def composer(qtbot):
    widget = ChatComposer()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_composer_enter_sends_and_clears(composer, qtbot):
    qtbot.keyClicks(composer.input, "hello")
    qtbot.keyClick(composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(composer.input, "world  ")
    assert composer.text() == "hello\nworld  "
    with qtbot.waitSignal(composer.send) as blocker:
        qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    assert blocker.args == ["hello\nworld"]
    assert composer.text() == ""
    with qtbot.assertNotEmitted(composer.send):
        qtbot.keyClicks(composer.input, "   ")
        qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    composer.input.setPlainText("again")
    with qtbot.waitSignal(composer.send) as blocker:
        qtbot.keyClick(composer.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == ["again"]


def test_composer_busy_stops(composer, qtbot):
    composer.set_busy(True)
    assert composer.button.text() == "Stop" and composer.button.isEnabled()
    assert composer.input.isEnabled()
    with qtbot.waitSignal(composer.stop):
        qtbot.mouseClick(composer.button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(composer.stop):
        qtbot.keyClick(composer.input, Qt.Key.Key_Escape)
    qtbot.keyClicks(composer.input, "next question")
    with qtbot.assertNotEmitted(composer.send):
        qtbot.keyClick(composer.input, Qt.Key.Key_Return)
    composer.set_busy(False)
    assert composer.button.text() == "Send"
    with qtbot.waitSignal(composer.send):
        qtbot.keyClick(composer.input, Qt.Key.Key_Return)


def test_composer_disabled_with_a_reason(composer):
    composer.set_enabled_reason("Load a model first")
    assert not composer.input.isEnabled() and not composer.button.isEnabled()
    assert composer.input.placeholderText() == "Load a model first"
    composer.set_enabled_reason(None)
    assert composer.input.isEnabled()


def test_scroll_follows_the_bottom_unless_the_user_scrolled_up(transcript, qtbot):
    transcript.resize(400, 200)
    bar = transcript.scroll.verticalScrollBar()
    transcript.begin_reply()
    assert transcript._views[-1].role_label.text() == "Model · writing…"
    for i in range(40):
        transcript.append_chunk(f"line {i}\n\n")
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum(), timeout=2000)
    bar.setValue(0)  # the user scrolls up to read
    for i in range(40):
        transcript.append_chunk(f"more {i}\n\n")
    qtbot.waitUntil(lambda: "more 39" in transcript._views[-1].body.toPlainText(), timeout=2000)
    qtbot.wait(50)
    assert bar.value() == 0
    bar.setValue(bar.maximum())  # back at the bottom: following again
    transcript.end_reply("done\n\n" * 80, {"stop_reason": "end_of_turn"})
    qtbot.waitUntil(lambda: bar.value() == bar.maximum(), timeout=2000)
    assert transcript._views[-1].role_label.text() == "Model"


def test_messages_fit_a_narrow_column(qtbot):
    from app.chat.transcript import ChatTranscript

    transcript = ChatTranscript("Tuned")
    qtbot.addWidget(transcript)
    transcript.resize(150, 500)
    transcript.show()
    long_reply = "Whetstone is a desktop app that fine-tunes open language models with QLoRA on your own GPU."
    transcript.set_messages(
        [
            {"role": "user", "content": "What is Whetstone?"},
            {
                "role": "assistant",
                "content": long_reply,
                "stats": {
                    "time_to_first_token_s": 0.87,
                    "tokens_per_second": 2.8,
                    "new_tokens": 28,
                    "stop_reason": "end_of_turn",
                },
            },
        ]
    )
    qtbot.waitUntil(lambda: transcript.scroll.widget().width() > 0)
    assert transcript.scroll.widget().width() <= transcript.scroll.viewport().width()


def test_a_new_reason_repaints_the_placeholder_that_shows_it(composer, qtbot):
    from PySide6.QtCore import QEvent, QObject

    class Paints(QObject):
        count = 0

        def eventFilter(self, _obj, event):  # noqa: N802 (Qt override)
            if event.type() == QEvent.Type.Paint:
                self.count += 1
            return False

    qtbot.waitExposed(composer)
    composer.set_enabled_reason("Choose a base model first")
    qtbot.wait(50)
    paints = Paints()
    composer.input.viewport().installEventFilter(paints)
    composer.set_enabled_reason("Press Load to load the model")
    qtbot.waitUntil(lambda: paints.count > 0, timeout=2000)  # Qt alone left the old text on screen
    assert composer.input.placeholderText() == "Press Load to load the model"


def test_a_long_run_name_does_not_make_its_side_wider_than_the_other(qtbot):
    from app.chat.side import ChatSide

    long, short = ChatSide("Base model (no adapter)"), ChatSide("")
    for side in (long, short):
        qtbot.addWidget(side)
    name = "Custom · rank 16 · lr 3e-4 · 145 steps, trained further twice: final adapter"
    long.set_choices([(name, "/runs/x/adapter")])
    long.transcript.set_title(name)
    short.set_choices([("Base model (no adapter)", None)])
    assert long.sizeHint().width() == short.sizeHint().width()
    assert long.transcript.title_label.toolTip() == name  # the whole name, where the label cuts it
