"""The export dialog's choices: the GGUF types in order with sizes, the options that go with each
output kind, the exact engine command each combination makes, and the finished message.

No engine runs here: the source is an adapter folder naming the tiny model as its base (what the
sizing reads), and the engine child process is a stand-in that replays the engine's messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, Signal

from app.export import dialog as dialog_module
from app.export.choices import Size, choice_text, gguf_sizes
from app.export.dialog import ExportDialog
from engine.cli.protocol import EXIT_DONE
from engine.util.units import format_size

ALL_TYPES = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_k_s", "q4_0", "f32")  # the writer's, issue 24
K_ORDER = ["q4_k_m", "q5_k_m", "q6_k", "q4_k_s", "q8_0", "f16", "q4_0"]


@pytest.fixture
def project(tmp_path, tiny_model_dir) -> Path:
    project = tmp_path / "project"
    adapter = project / "runs" / "run-1" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(tiny_model_dir), "peft_type": "LORA"})
    )
    return project


@pytest.fixture
def make_dialog(qtbot, project):
    def make(types=ALL_TYPES, sized: bool = True) -> ExportDialog:
        dialog = ExportDialog(project, project / "runs" / "run-1" / "adapter", quant_types=types)
        qtbot.addWidget(dialog)
        if sized:
            qtbot.waitUntil(lambda: dialog.options.base is not None, timeout=10000)
        return dialog

    return make


def keys(dialog: ExportDialog) -> list[str]:
    return [dialog.quant.itemData(row) for row in range(dialog.quant.count())]


def choose(dialog: ExportDialog, key: str) -> None:
    dialog.quant.setCurrentIndex(dialog.quant.findData(key))


def test_k_quants_come_first_and_q4_k_m_is_the_default(make_dialog):
    dialog = make_dialog()
    assert keys(dialog) == K_ORDER  # f32 is never offered: f16 is already exact
    assert dialog.quant.currentData() == "q4_k_m"
    texts = [dialog.quant.itemText(row) for row in range(dialog.quant.count())]
    assert texts[0].startswith("Q4_K_M") and "the usual choice for llama.cpp and Ollama" in texts[0]
    assert texts[-1].startswith("Q4_0 (legacy)")
    assert dialog.check.isChecked() and dialog.ollama.isChecked() and not dialog.imatrix.isChecked()


def test_a_writer_without_k_quants_keeps_q8_0_as_the_default(make_dialog):
    dialog = make_dialog(types=("f16", "q8_0", "q4_0", "f32"))
    assert keys(dialog) == ["q8_0", "f16", "q4_0"]
    assert dialog.quant.currentData() == "q8_0"


def test_each_type_shows_its_size_sized_off_the_ui_thread(make_dialog, qtbot, tiny_model_dir):
    from engine.export.gguf_write import estimate_gguf_bytes

    dialog = make_dialog(sized=False)
    assert "sizing…" in dialog.quant.itemText(0)  # the constructor returned before any sizing
    qtbot.waitUntil(lambda: dialog.options.base is not None, timeout=10000)
    assert dialog.options.base == tiny_model_dir.resolve()
    q8 = dialog.quant.itemText(dialog.quant.findData("q8_0"))
    assert f"Q8_0  ·  {format_size(estimate_gguf_bytes(tiny_model_dir, 'q8_0'))}  —  8-bit" in q8
    sizes = dialog.options.sizes
    assert sizes["q4_k_m"].nbytes < sizes["q8_0"].nbytes < sizes["f16"].nbytes
    assert all("sizing" not in dialog.quant.itemText(r) for r in range(dialog.quant.count()))


def test_a_type_the_writer_cannot_size_gets_an_about_size(tiny_model_dir, monkeypatch):
    from engine.errors import ConfigError
    from engine.export import gguf_write

    def unknown(_model_dir, quant):
        raise ConfigError(f"quant is {quant!r}", "")

    monkeypatch.setattr(gguf_write, "estimate_gguf_bytes", unknown)
    sizes = gguf_sizes(tiny_model_dir, ["q4_k_m", "f16"])
    from safetensors.numpy import load_file

    params = sum(t.size for t in load_file(tiny_model_dir / "model.safetensors").values())
    assert sizes["f16"] == Size(params * 2, rough=True)
    assert sizes["q4_k_m"] == Size(int(params * 4.85 / 8), rough=True)
    assert sizes["q4_k_m"].text().startswith("about ")


def test_the_command_for_each_combination(make_dialog, project):
    dialog = make_dialog()
    src = str(project / "runs" / "run-1" / "adapter")
    exports = project / "exports"
    gguf = str(exports / "run-1-q4_k_m.gguf")
    assert dialog.command() == [
        "export", src, "--gguf", gguf, "--quant", "q4_k_m", "--ollama", "--progress-json",
    ]  # fmt: skip
    dialog.imatrix.setChecked(True)
    assert dialog.command() == [
        "export", src, "--gguf", gguf, "--quant", "q4_k_m", "--imatrix", "--ollama", "--progress-json",
    ]  # fmt: skip
    choose(dialog, "q6_k")
    dialog.ollama.setChecked(False)
    dialog.check.setChecked(False)
    assert dialog.command() == [
        "export", src, "--gguf", str(exports / "run-1-q6_k.gguf"), "--quant", "q6_k", "--imatrix",
        "--no-check", "--progress-json",
    ]  # fmt: skip
    choose(dialog, "q8_0")  # no importance matrix for q8_0, although the box stays ticked
    assert dialog.command() == [
        "export", src, "--gguf", str(exports / "run-1-q8_0.gguf"), "--quant", "q8_0", "--no-check",
        "--progress-json",
    ]  # fmt: skip
    dialog.check.setChecked(True)
    dialog.merged_radio.setChecked(True)
    assert dialog.command() == ["export", src, "--merged", str(exports / "run-1-merged"), "--progress-json"]

    dialog.adapter_radio.setChecked(True)
    lora = str(exports / "run-1-lora.gguf")
    assert dialog.command() == ["export", src, "--adapter-gguf", lora, "--progress-json"]
    dialog.ollama.setChecked(True)
    choose(dialog, "q5_k_m")
    base = exports / f"{Path(dialog.options.base).name}-q5_k_m.gguf"  # not there: written as Q5_K_M
    assert dialog.base_gguf.text() == str(base)
    assert dialog.command() == [
        "export", src, "--adapter-gguf", lora, "--ollama", "--base-gguf", str(base), "--quant", "q5_k_m",
        "--progress-json",
    ]  # fmt: skip
    assert dialog.quant.isEnabled() and "written there once as Q5_K_M" in dialog.options.base_hint.text()
    exports.mkdir()
    base.write_bytes(b"GGUF")  # an existing base is reused as it is: no type to pass
    dialog.ollama.setChecked(False)
    dialog.ollama.setChecked(True)
    assert dialog.command() == [
        "export", src, "--adapter-gguf", lora, "--ollama", "--base-gguf", str(base), "--progress-json",
    ]  # fmt: skip
    assert not dialog.quant.isEnabled() and "exists" in dialog.options.base_hint.text()


def test_the_importance_matrix_is_only_for_k_quants_of_a_gguf_file(make_dialog):
    dialog = make_dialog()
    for key in K_ORDER:
        choose(dialog, key)
        assert dialog.imatrix.isEnabled() == (key in ("q4_k_m", "q5_k_m", "q6_k", "q4_k_s")), key
    choose(dialog, "q4_k_m")
    dialog.imatrix.setChecked(True)
    for radio in (dialog.merged_radio, dialog.adapter_radio):
        radio.setChecked(True)
        assert not dialog.imatrix.isEnabled() and "--imatrix" not in dialog.command()
    assert "extra time" in dialog.imatrix.toolTip() and "K-quants" in dialog.imatrix.toolTip()


def test_an_adapter_for_ollama_needs_a_base_gguf(make_dialog, qtbot):
    dialog = make_dialog()
    assert dialog.options.base_hint.isHidden()  # only an adapter with a Modelfile needs a base
    dialog.adapter_radio.setChecked(True)
    assert not dialog.options.base_hint.isHidden() and dialog.start_button.isEnabled()
    dialog.base_gguf.selectAll()
    qtbot.keyClick(dialog.base_gguf, Qt.Key.Key_Delete)  # the user clears the suggested base
    hint = dialog.options.base_hint.text()
    assert "needs a base GGUF" in hint and "c0392b" in hint  # said in red, next to the field
    assert not dialog.start_button.isEnabled()
    assert dialog.start() is None and "needs a base GGUF" in dialog.status.text()
    qtbot.keyClicks(dialog.base_gguf, "/tmp/base.bin")
    assert ".gguf" in dialog.options.base_hint.text() and not dialog.start_button.isEnabled()
    dialog.quant.setCurrentIndex(dialog.quant.findData("q6_k"))
    assert dialog.base_gguf.text() == "/tmp/base.bin"  # a base the user typed is never replaced
    dialog.ollama.setChecked(False)  # a plain adapter file for llama.cpp --lora needs no base
    assert dialog.options.base_hint.isHidden() and dialog.start_button.isEnabled()


class FakeEngine(QObject):
    """Stands in for EngineProcess: records the command, the test replays the engine's lines."""

    message = Signal(dict)
    ended = Signal(int, str)
    started: list[FakeEngine] = []

    def __init__(self, args, parent=None) -> None:
        super().__init__(parent)
        self.args = args
        FakeEngine.started.append(self)

    def start(self) -> None:
        pass

    def is_running(self) -> bool:
        return True

    def kill(self) -> None:
        self.ended.emit(3, "")

    def stop_now(self) -> None:
        pass


@pytest.fixture
def fake_engine(monkeypatch):
    FakeEngine.started = []
    monkeypatch.setattr(dialog_module, "EngineProcess", FakeEngine)
    return FakeEngine.started


PASSED = {"passed": True, "prompts": [{"prompt": "Who?", "same_text": True, "top1_agreement": 1.0}]}


def test_the_finished_message_names_the_model_card(make_dialog, fake_engine, project):
    dialog = make_dialog()
    dialog.start()
    engine = fake_engine[-1]
    assert engine.args == dialog.command()
    assert not dialog.start_button.isEnabled() and not dialog.quant.isEnabled()
    assert not any(button.isEnabled() for button in dialog.options._browse_buttons)  # nothing changes now
    gguf = Path(engine.args[3])
    gguf.write_bytes(b"GGUF")
    gguf.with_name("run-1-q4_k_m.README.md").write_text("# run-1\n")
    engine.message.emit({"check": PASSED})
    engine.message.emit({"done": str(gguf)})
    engine.ended.emit(EXIT_DONE, "")
    status = dialog.status.text()
    card = gguf.with_name("run-1-q4_k_m.README.md")
    assert "The check passed" in status and f"Model card: {card}." in status
    assert dialog.start_button.isEnabled() and dialog.quant.isEnabled()

    dialog.merged_radio.setChecked(True)
    dialog.start()
    engine = fake_engine[-1]
    folder = Path(engine.args[3])
    folder.mkdir()
    (folder / "README.md").write_text("# run-1\n")
    engine.message.emit({"done": str(folder)})
    engine.ended.emit(EXIT_DONE, "")
    assert f"Model card: {folder / 'README.md'}." in dialog.status.text()


def test_the_card_the_engine_names_is_shown_and_a_missing_one_is_not(make_dialog, fake_engine, tmp_path):
    dialog = make_dialog()
    dialog.start()
    engine = fake_engine[-1]
    engine.message.emit({"done": engine.args[3], "card": str(tmp_path / "card.md")})
    engine.ended.emit(EXIT_DONE, "")
    assert f"Model card: {tmp_path / 'card.md'}." in dialog.status.text()
    dialog.start()
    engine = fake_engine[-1]
    engine.message.emit({"done": engine.args[3]})  # an engine that writes no card yet
    engine.ended.emit(EXIT_DONE, "")
    assert "Model card" not in dialog.status.text() and "Exported to" in dialog.status.text()


def test_choice_text_without_a_size_says_it_is_sizing():
    from app.export.choices import BY_KEY

    assert choice_text(BY_KEY["q6_k"], None).startswith("Q6_K  ·  sizing…  —  6-bit")
    assert choice_text(BY_KEY["q6_k"], Size(3 * 1024**2, rough=True)).startswith("Q6_K  ·  about 3.0 MiB")


def test_a_modelfile_already_in_the_folder_is_said_before_the_export(make_dialog, project):
    dialog = make_dialog()
    assert dialog.options.output_hint.isHidden() and dialog.start_button.isEnabled()
    (project / "exports").mkdir()
    taken = Path(dialog.options.output.text()).with_suffix(".Modelfile")
    taken.write_text("FROM ./run-0.gguf\n")  # from an earlier export of that name
    dialog.options.refresh_output()  # as after each export
    hint = dialog.options.output_hint.text()
    assert f"{taken.name} is already there" in hint and "c0392b" in hint
    assert not dialog.options.output_hint.isHidden() and not dialog.start_button.isEnabled()
    dialog.ollama.setChecked(False)
    assert dialog.options.output_hint.isHidden() and dialog.start_button.isEnabled()
    dialog.ollama.setChecked(True)
    dialog.merged_radio.setChecked(True)  # a merged folder has no Modelfile
    assert dialog.start_button.isEnabled()


def test_without_a_base_model_the_types_show_no_size_and_the_dialog_says_why(qtbot, tmp_path):
    adapter = tmp_path / "project" / "runs" / "run-1" / "adapter"
    adapter.mkdir(parents=True)
    gone = tmp_path / "moved-away-model"
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(gone)}))
    dialog = ExportDialog(tmp_path / "project", adapter, quant_types=ALL_TYPES)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "sizing" not in dialog.quant.itemText(0), timeout=10000)
    assert dialog.quant.itemText(0) == (
        "Q4_K_M  —  4-bit, the usual choice for llama.cpp and Ollama; small, keeps most quality"
    )
    assert "The GGUF sizes are unknown" in dialog.status.text() and str(gone) in dialog.status.text()
