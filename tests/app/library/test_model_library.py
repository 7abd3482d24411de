"""The model library dialog: adding good and broken folders, the remote-code consent gate,
GGUF import in a child process, and choosing a project's base model."""

from __future__ import annotations

import json
import shutil

import pytest
from PySide6.QtWidgets import QMessageBox

import app.library.dialog as model_library
from app.infra.tasks import TaskRunner
from app.library.dialog import ModelLibraryDialog


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "warning", lambda _parent, title, text, *a: seen.append(f"{title}: {text}")
    )
    return seen


@pytest.fixture
def open_dialog(qtbot, home):
    from engine.models.library import ModelLibrary

    def make():
        runner = TaskRunner()
        dialog = ModelLibraryDialog(ModelLibrary(home), runner)
        dialog._runner = runner  # keep it alive with the dialog
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: dialog.scans >= 1, timeout=10000)
        return dialog

    return make


def rescanned(qtbot, dialog, before: int, timeout: int = 10000) -> None:
    qtbot.waitUntil(lambda: dialog.scans > before and not dialog.is_busy(), timeout=timeout)


def row_text(dialog) -> list[str]:
    index = dialog.table.currentIndex()
    model = dialog.table.model()
    return [model.index(index.row(), c).data() for c in range(model.columnCount())]


def test_the_demo_model_is_listed_before_it_is_prepared(open_dialog):
    dialog = open_dialog()
    first = dialog.table_model.info(0)
    assert first.source == "demo" and first.problem and not first.usable
    assert not dialog.use_button.isEnabled()


def test_a_good_folder_is_added_with_its_facts(open_dialog, qtbot, tiny_model_dir, warnings):
    dialog = open_dialog()
    before = dialog.scans
    dialog.add_folder(tiny_model_dir)
    rescanned(qtbot, dialog, before)
    info = dialog.current()
    assert info.path == tiny_model_dir.resolve() and info.usable and info.source == "added"
    name, source, arch, params, context, template, memory, status = row_text(dialog)
    assert (source, template, status) == ("added", "yes", "ready")
    assert (
        arch == "LlamaForCausalLM"
        and params != "?"
        and memory.endswith(("GiB", "MiB", "KiB"))
        and context != "?"
    )
    assert dialog.use_button.isEnabled() and warnings == []
    # It stays in the library for the next start; "Remove from list" forgets it without deleting files.
    again = open_dialog()
    assert again.select_path(tiny_model_dir)
    before = again.scans
    again.remove_button.click()
    rescanned(qtbot, again, before)
    assert again.table_model.row_of(tiny_model_dir.resolve()) == -1
    assert (tiny_model_dir / "config.json").is_file()


def test_a_broken_folder_is_refused_with_the_reason(open_dialog, qtbot, tmp_path, warnings):
    dialog = open_dialog()
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    (broken / "notes.txt").write_text("hello")
    dialog.add_folder(broken)
    qtbot.waitUntil(lambda: bool(warnings) and not dialog.is_busy(), timeout=10000)
    assert "config.json" in warnings[0]
    assert dialog.table_model.row_of(broken.resolve()) == -1


def test_remote_code_models_are_disabled_until_the_user_consents(
    open_dialog, qtbot, tiny_model_dir, tmp_path, monkeypatch, warnings
):
    custom = tmp_path / "custom-model"
    shutil.copytree(tiny_model_dir, custom)
    config = json.loads((custom / "config.json").read_text())
    config.update(
        model_type="totally_custom", auto_map={"AutoModelForCausalLM": "modeling_custom.CustomModel"}
    )
    (custom / "config.json").write_text(json.dumps(config))
    answers = [False]
    asked = []
    monkeypatch.setattr(
        model_library,
        "ask_remote_code_consent",
        lambda _parent, info: asked.append(info.name) or answers.pop(0),
    )

    dialog = open_dialog()
    before = dialog.scans
    dialog.add_folder(custom)
    rescanned(qtbot, dialog, before)
    info = dialog.current()
    assert asked == ["custom-model"]
    assert info.needs_remote_code and not info.remote_code_allowed and not info.usable
    assert not dialog.use_button.isEnabled() and dialog.consent_button.isEnabled()
    assert "consent" in row_text(dialog)[-1]

    answers.append(True)
    before = dialog.scans
    dialog.consent_button.click()
    rescanned(qtbot, dialog, before)
    info = dialog.current()
    assert info.remote_code_allowed and info.usable and dialog.use_button.isEnabled()


def test_a_file_that_is_not_gguf_is_refused(open_dialog, qtbot, tmp_path, home, warnings):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"this is not a gguf file" * 10)
    dialog = open_dialog()
    dialog.import_gguf(fake)
    qtbot.waitUntil(lambda: bool(warnings), timeout=60000)
    assert "GGUF" in warnings[0]
    assert not (home / "models" / "model").exists()


@pytest.mark.slow  # a GGUF file converted in an engine process
def test_a_gguf_file_is_converted_into_a_usable_model(
    open_dialog, qtbot, home, warnings, tiny_model_dir, tmp_path
):
    """The GUI runs `models import-gguf --progress-json` on a GGUF of the tiny model (the shipped
    demo GGUF, made by llama.cpp's converter, goes through the same conversion in test_demo_model)."""
    from engine.export.gguf_write import write_gguf
    from engine.models.library import describe_model

    gguf = write_gguf(tiny_model_dir, tmp_path / "tiny.gguf", "f16")
    dialog = open_dialog()
    progress = []
    process = dialog.import_gguf(gguf, name="tiny-from-gguf")
    process.message.connect(progress.append)
    shown = []
    dialog.progress.valueChanged.connect(shown.append)
    before = dialog.scans
    rescanned(qtbot, dialog, before, timeout=300000)
    assert warnings == []
    info = dialog.current()
    assert info.name == "tiny-from-gguf" and info.source == "imported" and info.usable
    assert info.has_chat_template and info.parameters == describe_model(tiny_model_dir).parameters
    assert info.context_length == 256
    fractions = [m["progress"] for m in progress if "progress" in m]
    assert (
        fractions == sorted(fractions)
        and fractions[0] == 0.0
        and fractions[-1] == 1.0
        and len(fractions) >= 6
    )
    assert progress[-1] == {"done": str(home / "models" / "tiny-from-gguf")}
    assert max(shown) == 100  # the progress bar followed the engine
    assert sorted(p.name for p in (home / "models").iterdir()) == ["tiny-from-gguf"]  # no staging left behind

    # The same name again is refused before any work, with the engine's reason.
    dialog.import_gguf(gguf, name="tiny-from-gguf")
    qtbot.waitUntil(lambda: bool(warnings), timeout=60000)
    assert "already exists" in warnings[0] and "another name" in warnings[0]


def test_choosing_a_model_sets_the_projects_base_model(make_window, qtbot, tiny_model_dir):
    from engine.models.library import ModelLibrary
    from engine.workspace import load_project_config

    window = make_window()
    qtbot.waitUntil(lambda: window.current_project is not None, timeout=10000)
    ModelLibrary(window.workspace_model.workspace.root).add_folder(tiny_model_dir)
    dialog = window.open_library()
    qtbot.waitUntil(lambda: dialog.scans >= 1 and not dialog.is_busy(), timeout=10000)
    assert dialog.select_path(tiny_model_dir)
    dialog.use_button.click()
    qtbot.waitUntil(lambda: window.tasks.active() == 0, timeout=10000)
    config = load_project_config(window.current_project)
    assert config.model.path == str(tiny_model_dir.resolve())
    qtbot.waitUntil(
        lambda: (
            "tiny" in window.chat_page.model_label.text()
            or str(tiny_model_dir.name) in window.chat_page.model_label.text()
        ),
        timeout=10000,
    )
