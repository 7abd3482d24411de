"""The main window on a real workspace: first start, project actions, outside changes, state."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from app.shell.project_browser import KIND_ROLE, PATH_ROLE


def tree_texts(window) -> list[str]:
    """Every row of the project tree as 'name | details', depth-first."""
    model = window.browser.model
    rows: list[str] = []

    def walk(parent, depth):
        for r in range(model.rowCount(parent)):
            name = model.index(r, 0, parent)
            detail = model.index(r, 1, parent)
            rows.append("  " * depth + f"{name.data()} | {detail.data()}")
            walk(name, depth + 1)

    from PySide6.QtCore import QModelIndex

    walk(QModelIndex(), 0)
    return rows


def project_names(window) -> list[str]:
    return [p.name for p in window.workspace_model.projects]


def wait_for(qtbot, window, condition, timeout=10000):
    qtbot.waitUntil(lambda: window.tasks.active() == 0 and condition(), timeout=timeout)


def test_first_start_opens_the_demo_project_with_its_data_and_model(make_window, qtbot):
    window = make_window()
    wait_for(qtbot, window, lambda: window.current_project is not None)
    assert project_names(window) == ["Whetstone demo"]
    demo = window.workspace_model.projects[0]
    assert window.current_project == demo.path
    assert window.windowTitle() == "Whetstone demo — Whetstone"
    rows = "\n".join(tree_texts(window))
    assert "whetstone_facts.jsonl" in rows and "used for training" in rows
    assert demo.model and demo.model.endswith("SmolLM2-135M-Instruct")
    assert window.data_page.toolbar.current_dataset().name == "whetstone_facts.jsonl"
    assert "SmolLM2-135M-Instruct" in window.chat_page.model_label.text()
    # A second start of the same workspace does not add another demo project.
    window.close()
    again = make_window()
    assert project_names(again) == ["Whetstone demo"]


def test_create_rename_duplicate_and_delete_projects(make_window, dialogs, qtbot):
    window = make_window()
    dialogs.answers = ["Support bot"]
    window.project_actions.new_project()
    wait_for(
        qtbot,
        window,
        lambda: (
            "Support bot" in project_names(window)
            and window.current_project is not None
            and window.workspace_model.project(window.current_project).name == "Support bot"
        ),
    )
    path = window.current_project
    assert (path / "project.toml").is_file() and (path / "datasets").is_dir()

    dialogs.answers = ["Helpdesk bot"]
    window.project_actions.rename_project()
    wait_for(qtbot, window, lambda: "Helpdesk bot" in project_names(window))
    assert window.current_project == path and window.windowTitle().startswith("Helpdesk bot")

    dialogs.answers = ["Helpdesk bot v2"]
    window.project_actions.duplicate_project()
    wait_for(qtbot, window, lambda: "Helpdesk bot v2" in project_names(window))
    assert window.workspace_model.project(window.current_project).name == "Helpdesk bot v2"

    dialogs.confirm = False
    window.project_actions.delete_project()
    qtbot.wait(50)
    wait_for(qtbot, window, lambda: True)
    assert "Helpdesk bot v2" in project_names(window)
    dialogs.confirm = True
    window.project_actions.delete_project()
    wait_for(qtbot, window, lambda: "Helpdesk bot v2" not in project_names(window))
    assert sorted(project_names(window)) == ["Helpdesk bot", "Whetstone demo"]
    assert dialogs.warnings == []


def test_a_duplicate_name_is_refused_with_a_clear_message(make_window, dialogs, qtbot):
    window = make_window()
    dialogs.answers = ["whetstone DEMO"]
    window.project_actions.new_project()
    wait_for(qtbot, window, lambda: bool(dialogs.warnings))
    assert "already" in dialogs.warnings[0].lower()
    assert project_names(window) == ["Whetstone demo"]


def test_the_browser_follows_changes_made_outside_the_app(make_window, qtbot, home):
    from engine.workspace import Workspace

    window = make_window()
    outside = Workspace(home)
    made = outside.create_project("Made in a terminal")
    wait_for(qtbot, window, lambda: "Made in a terminal" in project_names(window))

    # A dataset copied into the folder appears under it.
    (made / "datasets" / "extra.jsonl").write_text('{"text": "hello"}\n')
    wait_for(qtbot, window, lambda: any("extra.jsonl" in row for row in tree_texts(window)))

    # The selected project deleted behind the app's back: gone, nothing selected, no error box.
    window.browser.select_project(made)
    assert window.current_project == made
    shutil.rmtree(made)
    wait_for(qtbot, window, lambda: "Made in a terminal" not in project_names(window))
    assert window.current_project is None
    assert "No project selected" in window.chat_page.model_label.text()


def test_a_broken_project_file_is_listed_with_the_reason_and_can_be_deleted(
    make_window, qtbot, home, dialogs
):
    window = make_window()
    broken = home / "projects" / "broken"
    (broken / "datasets").mkdir(parents=True)
    (broken / "project.toml").write_text("this is [not toml")
    wait_for(qtbot, window, lambda: len(window.workspace_model.projects) == 2)
    summary = next(p for p in window.workspace_model.projects if p.path == broken)
    assert summary.problem
    window.browser.select_project(broken)
    assert "cannot be opened" in window.chat_page.model_label.text()
    window.project_actions.delete_project()
    wait_for(qtbot, window, lambda: len(window.workspace_model.projects) == 1)
    assert not broken.exists()


def test_window_state_and_current_project_are_restored(make_window, dialogs, qtbot):
    window = make_window()
    dialogs.answers = ["Second"]
    window.project_actions.new_project()
    wait_for(
        qtbot,
        window,
        lambda: (
            window.current_project is not None
            and window.workspace_model.project(window.current_project).name == "Second"
        ),
    )
    window.resize(1000, 650)
    window.pages.setCurrentIndex(2)
    window.close()

    again = make_window()
    wait_for(qtbot, again, lambda: again.current_project is not None)
    assert again.workspace_model.project(again.current_project).name == "Second"
    assert again.pages.currentIndex() == 2
    assert (again.width(), again.height()) == (1000, 650)


def test_keyboard_shortcuts_are_wired(make_window):
    window = make_window()
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString() for a in window.actions()}
    assert shortcuts["New project…"] == "Ctrl+N"
    assert shortcuts["Rename…"] == "F2"
    assert shortcuts["Model library…"] == "Ctrl+L"
    assert shortcuts["Chat"] == "Ctrl+3"
    assert window.minimumWidth() >= 800


def test_tree_items_carry_their_kind_and_path(make_window):
    window = make_window()
    model = window.browser.model
    project = model.index(0, 0)
    kinds = [model.index(r, 0, project).data(KIND_ROLE) for r in range(model.rowCount(project))]
    assert kinds == ["datasets", "runs", "exports"]
    dataset = model.index(0, 0, model.index(0, 0, project))
    assert dataset.data(KIND_ROLE) == "dataset" and dataset.data(PATH_ROLE).is_file()
    assert model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)


def test_an_unusable_workspace_folder_gives_a_message_not_a_crash(make_window, home, dialogs, qtbot):
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("a file where the workspace folder should be")
    window = make_window(wait=False)
    qtbot.waitUntil(lambda: bool(dialogs.warnings) and window.tasks.active() == 0, timeout=10000)
    assert dialogs.warnings[0].startswith("Cannot use") and "write to it" in dialogs.warnings[0]
    assert window.workspace_model.projects == [] and window.current_project is None


def test_reveal_opens_the_folder_of_the_selected_item(make_window, monkeypatch):
    import app.shell.project_actions as project_actions

    opened = []
    monkeypatch.setattr(
        project_actions.QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile())
    )
    window = make_window()
    window.browser.tree.expandAll()
    dataset = next(window.workspace_model.projects[0].path.glob("datasets/*.jsonl"))
    window.browser.tree.setCurrentIndex(window.browser._find(str(dataset)).index())
    window.project_actions.reveal_current()
    assert opened == [str(dataset.parent)]


@pytest.mark.slow  # a child process that imports torch and probes the machine
def test_diagnostics_are_collected_in_a_child_process_and_copied(make_window, qtbot):
    from PySide6.QtGui import QGuiApplication

    window = make_window()
    dialog = window.show_diagnostics()
    qtbot.waitUntil(lambda: dialog.copy_button.isEnabled(), timeout=120000)
    text = dialog.report_text()
    for key in (
        "torch_version",
        "cuda_available",
        "bitsandbytes_backend",
        "transformers_version",
        "peft_version",
    ):
        assert key in text
    assert (
        window.probe.device_summary() in ("CPU (no CUDA GPU)",) or "GiB free" in window.probe.device_summary()
    )
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == text


def test_the_demo_model_is_prepared_only_when_a_project_uses_it(make_window, qtbot, home, dialogs):
    window = make_window()
    window.demo.enabled = True  # the fixture's window prepares nothing by itself
    demo = window.workspace_model.projects[0]
    other = [p for p in window.workspace_model.projects if p.path != demo.path]
    window.demo.prepare_for(other)  # no project needs it: nothing starts
    assert window.demo.process is None
    window.demo.prepare_for([demo])
    assert window.demo.process is not None and window.status_bar.busy_label.text().startswith(
        "Preparing the demo model"
    )
    process = window.demo.process
    window.demo.prepare_for([demo])  # once per session, not once per rescan
    assert window.demo.process is process
    process.stop_now()
    qtbot.waitUntil(lambda: window.demo.process is None, timeout=10000)
    assert not window.status_bar.busy_bar.isVisible() and dialogs.warnings == []  # a stop is not an error
    assert not (home / "models" / "SmolLM2-135M-Instruct" / "config.json").exists()  # a stop keeps nothing


def test_the_project_browser_is_wide_enough_for_project_names_on_every_tab(make_window, qtbot, settings):
    window = make_window()
    window.resize(1180, 740)
    qtbot.wait(50)
    browser, tree = window.browser, window.browser.tree
    name = window.workspace_model.projects[0].name
    needed = tree.fontMetrics().horizontalAdvance(name) + tree.indentation()
    widths = []
    for tab in range(window.pages.count()):
        window.pages.setCurrentIndex(tab)
        window.data_page.toolbar.show_progress(0, 0, "Checking rows (in a separate process) " * 3)
        qtbot.wait(50)
        widths.append(window.splitter.sizes()[0])
        assert tree.columnWidth(0) >= needed and tree.viewport().width() >= needed, (tab, widths)
    assert len(set(widths)) == 1 and widths[0] >= browser.default_width() - 1  # one state for the window
    # Dragged as far left as it goes, the names stay readable.
    window.splitter.moveSplitter(0, 1)
    qtbot.wait(50)
    assert window.splitter.sizes()[0] == browser.minimumWidth() and tree.viewport().width() >= needed
    # The width the user chose is the one the next start shows, on whichever tab.
    window.splitter.moveSplitter(320, 1)
    chosen = window.splitter.sizes()[0]
    window.close()
    again = make_window()
    qtbot.wait(50)
    assert again.splitter.sizes()[0] == chosen


def test_a_run_that_starts_takes_the_gpu_back_from_the_chat_but_not_its_ram(make_window, tmp_path):
    window = make_window()
    first, second = window.chat_page.sides
    unloaded = []
    for side, device in ((first, "cuda"), (second, "cpu")):  # as the chat server's "loaded" event says
        side._key = ("model", None, "auto")
        side._on_loaded({"model": "model", "adapter": None, "device": device, "memory_bytes": 1})
        side.client.is_running = lambda: True
        side.client.unload = lambda side=side: unloaded.append(side)
    window.runs.started.emit(tmp_path / "run")
    assert unloaded == [first]  # the GPU's memory goes to the run; RAM is not short the same way
    assert window.status_bar.currentMessage().startswith("Unloaded the Chat tab's model from the GPU")
    first._on_unloaded()
    window.status_bar.clearMessage()
    window.runs.started.emit(tmp_path / "run")  # nothing on the GPU any more: nothing to say
    assert unloaded == [first] and window.status_bar.currentMessage() == ""
