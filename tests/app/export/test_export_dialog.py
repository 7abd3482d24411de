"""Exporting a real run from the app: the engine child process writes a GGUF (+ Modelfile)
or a merged folder, the check's per-prompt agreement is shown, cancel keeps nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.export.dialog import ExportDialog, default_output


def run_dialog(qtbot, project: Path, source: Path) -> ExportDialog:
    dialog = ExportDialog(project, source)
    qtbot.addWidget(dialog)
    return dialog


def test_default_output_names_follow_the_source(tmp_path):
    run = tmp_path / "runs" / "run-1"
    assert default_output(tmp_path, run, "gguf", "q8_0") == tmp_path / "exports" / "run-1-q8_0.gguf"
    assert default_output(tmp_path, run / "adapter", "merged", "f16") == tmp_path / "exports" / "run-1-merged"
    ckpt = run / "checkpoints" / "checkpoint-4"
    assert default_output(tmp_path, ckpt, "gguf", "f16") == tmp_path / "exports" / "run-1-4-f16.gguf"
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "run-1-q8_0.gguf").write_bytes(b"x")
    assert default_output(tmp_path, run, "gguf", "q8_0").name == "run-1-q8_0-2.gguf"


@pytest.mark.slow  # a merge, a GGUF export and its check
def test_a_run_exports_to_a_checked_gguf_with_a_modelfile(qtbot, project_with_run):
    dialog = run_dialog(qtbot, project_with_run, project_with_run / "runs" / "run-1")
    dialog.quant.setCurrentIndex(dialog.quant.findData("q8_0"))
    assert dialog.ollama.isChecked() and dialog.check.isChecked()
    exported = []
    dialog.exported.connect(exported.append)
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_running() and dialog._process is None, timeout=300000)
    assert dialog.error == "", dialog.error
    gguf = Path(dialog.result["done"])
    assert gguf == project_with_run / "exports" / "run-1-q8_0.gguf" and gguf.is_file()
    assert exported == [str(gguf)]
    modelfile = (gguf.parent / "run-1-q8_0.Modelfile").read_text()
    assert "FROM ./run-1-q8_0.gguf" in modelfile and "PARAMETER stop" in modelfile
    assert dialog.table.rowCount() >= 2  # one row per prompt of the check
    assert "passed" in dialog.status.text()
    names = sorted(p.name for p in gguf.parent.iterdir())
    assert names == ["run-1-q8_0.Modelfile", "run-1-q8_0.README.md", "run-1-q8_0.gguf"]  # no temp files
    assert f"Model card: {gguf.parent / 'run-1-q8_0.README.md'}." in dialog.status.text()


def test_cancelling_a_merge_keeps_nothing(qtbot, project_with_run):
    dialog = run_dialog(qtbot, project_with_run, project_with_run / "runs" / "run-1" / "adapter")
    dialog.merged_radio.setChecked(True)
    target = Path(dialog.output.text())
    process = dialog.start()
    process.message.connect(lambda m: dialog.cancel() if "progress" in m else None)
    qtbot.waitUntil(lambda: dialog._process is None, timeout=120000)
    assert "cancelled" in dialog.status.text().lower() or dialog.error
    assert not target.exists()
    assert [p.name for p in (project_with_run / "exports").iterdir()] == []


def test_the_export_action_follows_the_selection(make_window, qtbot, project_with_run):
    window = make_window()
    window.browser.select_project(project_with_run)
    qtbot.waitUntil(
        lambda: (
            window.workspace_model.project(project_with_run) is not None
            and bool(window.workspace_model.project(project_with_run).runs)
        ),
        timeout=10000,
    )

    def select(path: Path) -> None:
        item = window.browser._find(str(path))
        window.browser.tree.setCurrentIndex(item.index())

    window.browser.tree.expandAll()
    select(project_with_run / "runs" / "run-1")
    assert window.export_action.isEnabled()
    assert window.browser.current_item()[1] == project_with_run / "runs" / "run-1"
    select(project_with_run / "datasets")
    assert not window.export_action.isEnabled()


def test_the_dialog_says_which_step_a_runs_adapter_holds(short_run, tmp_path):
    import shutil

    from app.export.dialog import best_note
    from engine.runs.best import write_best

    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    assert best_note(run) == ""  # no validation data, no best checkpoint
    write_best(run, 8, 0.5)
    assert best_note(run) == "Its adapter is the best checkpoint: step 8 (validation loss 0.5000)."
    write_best(run, 4, 0.25)  # as with training.final_adapter = "last"
    assert (
        best_note(run)
        == "Its best checkpoint is step 4 (validation loss 0.2500); the adapter is from step 8."
    )
