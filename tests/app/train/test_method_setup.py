"""training.method in the setup: the choice and its help, the settings each method uses, the data check,
continued pre-training named, and the fit line for full fine-tuning."""

from __future__ import annotations

import json
import shutil

from testkit.engine_helpers import tiny_config

from app.train.settings_form import SettingsForm
from engine.config import RunConfig
from engine.util.files import format_size
from engine.workspace import Workspace, save_project_config

METHOD_FIELDS = (
    "training.preference_beta",
    "training.dpo_loss",
    "training.init_adapter",
    "training.prompt_tuning_tokens",
    "training.full_layers",
)


def choose(combo, value) -> None:
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)


def visible(form: SettingsForm) -> set[str]:
    return {name for name in METHOD_FIELDS if not form._cells[name].isHidden()}


def test_each_method_shows_the_settings_it_uses(qtbot):
    form = SettingsForm()
    qtbot.addWidget(form)
    form.set_values(RunConfig().to_dict())
    form.show()
    method = form.editors["training.method"]
    assert method.currentData() == "sft" and visible(form) == {"training.init_adapter"}
    expected = {
        "dpo": {"training.preference_beta", "training.dpo_loss", "training.init_adapter"},
        "orpo": {"training.preference_beta", "training.init_adapter"},
        "kto": {"training.preference_beta", "training.init_adapter"},
        "full": {"training.full_layers"},
        "prompt_tuning": {"training.prompt_tuning_tokens"},
    }
    for name, fields in expected.items():
        choose(method, name)
        assert visible(form) == fields, name
        assert form.labels["training.full_layers"].isHidden() == (name != "full")
        assert form._boxes["lora"].isHidden() == (name in ("full", "prompt_tuning")), name
    choose(method, "dpo")
    raw = form.values_into(RunConfig().to_dict())
    assert raw["training"]["method"] == "dpo" and raw["training"]["dpo_loss"] == "sigmoid"
    # The method comes first, in its own box at the top, and its tooltip says when to use which.
    assert form._grid.indexOf(form._boxes["method"]) >= 0
    assert form._grid.getItemPosition(form._grid.indexOf(form._boxes["method"]))[:2] == (0, 0)
    layout = form._boxes["method"].layout()
    assert layout.itemAt(0, layout.ItemRole.FieldRole).widget() is form._cells["training.method"]
    tip = method.toolTip()
    assert "The usual step after SFT" in tip and "thumbs up/down" in tip and "small models" in tip


def test_a_saved_method_and_start_adapter_come_back_into_the_form(qtbot, tmp_path):
    form = SettingsForm()
    qtbot.addWidget(form)
    raw = RunConfig().with_overrides({"training.method": "kto", "training.init_adapter": str(tmp_path)})
    form.set_values(raw.to_dict())
    assert form.editors["training.method"].currentData() == "kto"
    assert form.editors["training.init_adapter"].currentText() == f"Folder: {tmp_path}"
    out = form.values_into(raw.to_dict())
    assert out["training"]["init_adapter"] == str(tmp_path) and out["training"]["method"] == "kto"


def test_the_start_adapter_lists_finished_runs_and_a_folder_chooser(qtbot, home, project_with_run, tmp_path):
    form = SettingsForm()
    qtbot.addWidget(form)
    form.set_values(RunConfig().to_dict())
    project = Workspace(home).summarize(project_with_run)
    form.set_runs(project.runs)
    picker = form.editors["training.init_adapter"]
    run = project.runs[0]
    labels = [picker.itemText(i) for i in range(picker.count())]
    assert labels[0] == "A fresh adapter" and labels[-1] == "Choose a folder…"
    index = picker.findData(str(run.path))
    assert index > 0
    with qtbot.waitSignal(form.changed):
        picker.setCurrentIndex(index)
        picker.activated.emit(index)
    assert form.values_into(RunConfig().to_dict())["training"]["init_adapter"] == str(run.path)
    assert form._boxes["lora"].isHidden()  # the starting adapter brings its own rank and targets
    picker._choose_folder = lambda: str(tmp_path)
    with qtbot.waitSignal(form.changed):
        picker.activated.emit(picker.count() - 1)
    assert picker.value() == str(tmp_path) and picker.currentText() == f"Folder: {tmp_path}"
    picker._choose_folder = lambda: ""  # cancelled: the choice stays
    picker.activated.emit(picker.count() - 1)
    assert picker.value() == str(tmp_path) and picker.currentText() == f"Folder: {tmp_path}"
    with qtbot.waitSignal(form.changed):
        picker.activated.emit(0)  # a fresh adapter: the LoRA settings apply again
    assert picker.value() == "" and not form._boxes["lora"].isHidden()


def open_setup(make_window, project, qtbot):
    window = make_window()
    window.browser.select_project(project)
    window.pages.setCurrentWidget(window.train_page)
    setup = window.train_page.setup
    qtbot.waitUntil(lambda: setup.project is not None, timeout=10000)
    return setup


def set_method(setup, method: str) -> None:
    choose(setup.form.editors["training.method"], method)  # the form's changed signal runs the checks


def test_the_setup_warns_when_method_and_data_do_not_match(make_window, home, tiny_model_dir, qtbot):
    project = Workspace(home).create_project("Pairs")
    pairs = project / "datasets" / "pairs.jsonl"
    rows = [{"prompt": f"Capital {i}?", "chosen": "Paris.", "rejected": "Rome."} for i in range(12)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    save_project_config(project, tiny_config(tiny_model_dir, pairs, training__max_steps=4))
    setup = open_setup(make_window, project, qtbot)

    qtbot.waitUntil(lambda: "training.method" in setup.errors, timeout=10000)  # sft on pairs
    assert not setup.start_button.isEnabled()
    shown = setup.form.error_labels["training.method"].text()
    assert "holds preference pairs" in shown and "Choose DPO, ORPO or KTO as the method" in shown
    assert "Choose DPO, ORPO or KTO" in setup.top_errors.text()  # beside Start too
    set_method(setup, "dpo")
    qtbot.waitUntil(setup.start_button.isEnabled, timeout=10000)
    assert "training.method" not in setup.errors and setup.data_note.isHidden()
    assert setup.config().training.method == "dpo"
    # A start adapter that is not one is refused in place, with the engine's words.
    picker = setup.form.editors["training.init_adapter"]
    picker.set_value(str(project))
    picker.changed.emit()
    assert "holds no LoRA adapter" in setup.form.error_labels["training.init_adapter"].text()
    assert not setup.start_button.isEnabled()
    picker.set_value("")
    picker.changed.emit()
    assert setup.start_button.isEnabled()
    set_method(setup, "kto")  # kto takes pairs too
    assert "training.method" not in setup.errors
    set_method(setup, "full")
    assert "training.method = full trains on conversations or text" in setup.errors["training.method"]


def test_sft_on_raw_text_is_named_continued_pretraining(make_window, home, tiny_model_dir, qtbot):
    project = Workspace(home).create_project("Text")
    text = project / "datasets" / "notes.txt"
    text.write_text("Whetstone trains small models.\n\nIt runs offline.\n", encoding="utf-8")
    save_project_config(project, tiny_config(tiny_model_dir, text, training__max_steps=4))
    setup = open_setup(make_window, project, qtbot)
    qtbot.waitUntil(lambda: "Continued pre-training" in setup.data_note.text(), timeout=10000)
    assert "every token" in setup.data_note.text() and "every token" in setup.data_note.toolTip()
    assert not setup.data_note.isHidden() and "training.method" not in setup.errors
    set_method(setup, "dpo")
    assert "needs preference pairs" in setup.errors["training.method"]
    assert "Choose a preference dataset" in setup.errors["training.method"]


def test_the_fit_line_says_when_full_fine_tuning_does_not_fit(
    make_window, home, tiny_model_dir, facts_file, qtbot
):
    from engine.models.memory_estimate import estimate_training_memory

    project = Workspace(home).create_project("Full")
    data = project / "datasets" / "facts.jsonl"
    shutil.copy(facts_file, data)
    config = tiny_config(tiny_model_dir, data, training__max_steps=4)
    save_project_config(project, config)
    setup = open_setup(make_window, project, qtbot)
    sft = estimate_training_memory(tiny_model_dir, config)
    setup.set_device_report(
        {"cuda_available": True, "gpus": [{"free_bytes": int(sft.total_bytes / 0.95) + 1}]}
    )
    qtbot.waitUntil(lambda: "Fits" in setup.estimate_label.text(), timeout=10000)
    set_method(setup, "full")
    qtbot.waitUntil(lambda: "Full fine-tuning needs ~" in setup.estimate_label.text(), timeout=10000)
    assert "use LoRA (training.method sft" in setup.estimate_label.text()
    assert "Gradients + AdamW state" in setup.estimate_label.text()


def test_the_estimate_says_what_auto_checkpointing_comes_to_on_this_gpu(
    make_window, home, tiny_model_dir, facts_file, qtbot
):
    from engine.models.memory_estimate import estimate_training_memory

    project = Workspace(home).create_project("Auto")
    data = project / "datasets" / "facts.jsonl"
    shutil.copy(facts_file, data)
    config = tiny_config(tiny_model_dir, data, training__gradient_checkpointing="auto")
    save_project_config(project, config)
    setup = open_setup(make_window, project, qtbot)
    qtbot.waitUntil(lambda: "Gradient checkpointing <i>auto</i>: counted on" in setup.estimate_label.text())
    without = estimate_training_memory(
        tiny_model_dir, config.with_overrides({"training.gradient_checkpointing": False})
    ).total_bytes
    setup.set_device_report({"cuda_available": True, "gpus": [{"free_bytes": 4 * without}]})
    qtbot.waitUntil(lambda: "<i>auto</i> on this GPU: off" in setup.estimate_label.text(), timeout=10000)
    assert f"Estimated GPU memory: {format_size(without)}" in setup.estimate_label.text()
    assert (  # the engine's own reason, with its figures
        f"off (without it the run needs about {format_size(without)} of the {format_size(4 * without)} free, "
        "so no layer is recomputed)."
    ) in setup.estimate_label.text()
    setup.set_device_report({"cuda_available": True, "gpus": [{"free_bytes": without}]})
    qtbot.waitUntil(lambda: "<i>auto</i> on this GPU: on" in setup.estimate_label.text(), timeout=10000)


def test_on_a_gpu_the_setup_says_whether_fused_kernels_and_flex_attention_will_run_and_why(
    make_window, home, tiny_model_dir, facts_file, qtbot, monkeypatch
):
    import engine.models.fused_kernels as fused_kernels
    import engine.models.packing as packing

    project = Workspace(home).create_project("Kernels")
    data = project / "datasets" / "facts.jsonl"
    shutil.copy(facts_file, data)
    save_project_config(project, tiny_config(tiny_model_dir, data, training__attention="flex_attention"))
    monkeypatch.setattr(fused_kernels, "liger_installed", lambda: True)
    problem = "Triton builds its kernels with a C compiler, and no gcc or clang is on PATH"
    monkeypatch.setattr(fused_kernels, "triton_build_problem", lambda: problem)
    monkeypatch.setattr(packing, "triton_build_problem", lambda: problem)
    setup = open_setup(make_window, project, qtbot)
    qtbot.waitUntil(lambda: "Estimated GPU memory" in setup.estimate_label.text(), timeout=10000)
    assert "Fused GPU kernels" not in setup.estimate_label.text()  # no GPU here: nothing to say
    setup.set_device_report({"cuda_available": True, "gpus": [{"free_bytes": 2**34}]})
    qtbot.waitUntil(lambda: "Fused GPU kernels" in setup.estimate_label.text(), timeout=10000)
    text = setup.estimate_label.text()
    assert f"Fused GPU kernels: off (Liger&#x27;s kernels cannot be built here: {problem})." in text
    assert "Attention: sdpa instead of flex_attention (flex attention is compiled by Triton" in text

    monkeypatch.setattr(fused_kernels, "triton_build_problem", lambda: None)
    monkeypatch.setattr(packing, "triton_build_problem", lambda: None)
    setup.set_device_report({"cuda_available": True, "gpus": [{"free_bytes": 2**34 + 1}]})
    qtbot.waitUntil(lambda: "Fused GPU kernels: on" in setup.estimate_label.text(), timeout=10000)
    assert "Attention:" not in setup.estimate_label.text()
