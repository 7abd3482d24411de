"""The first start in a real window while the demo model is still being made (issue 18, item 1).

The window's path is the real one: its DemoModel starts an engine child process for
`demo-model` and every page follows that state. Only the child is a stand-in that waits for
the test's go-ahead and then puts the (cached) converted model in place as the conversion does,
so the test controls when the conversion completes and does not spend a minute converting.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CACHE_HOME = REPO / ".cache" / "test-home"  # where the engine tests keep the converted demo model

CONVERSION = """
import sys, time
from pathlib import Path

source, target, go = map(Path, sys.argv[1:4])
while not go.exists():
    time.sleep(0.05)
partial = target.parent / ("." + target.name + ".partial")
partial.mkdir(parents=True)
for file in source.iterdir():
    (partial / file.name).symlink_to(file)
partial.rename(target)
print(target)
"""


pytestmark = pytest.mark.slow  # the first run of the suite converts the demo model into the cache (a minute)


@pytest.fixture(scope="module")
def converted_demo_model() -> Path:
    from engine.models.demo import ensure_demo_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WHETSTONE_HOME", str(CACHE_HOME))
        return ensure_demo_model(progress=lambda _message: None)


@pytest.fixture
def held_conversion(monkeypatch, home, tmp_path, converted_demo_model):
    """`demo-model` children wait for the returned file to exist; other engine commands run for real."""
    import app.infra.engine_process as engine_process
    from engine.models.demo import DEMO_NAME

    go = tmp_path / "conversion-may-finish"
    real = engine_process.engine_command

    def command(*args: str) -> list[str]:
        if args == ("demo-model",):
            target = home / "models" / DEMO_NAME
            return [sys.executable, "-c", CONVERSION, str(converted_demo_model), str(target), str(go)]
        return real(*args)

    monkeypatch.setattr(engine_process, "engine_command", command)
    return go


def test_every_view_waits_for_the_demo_model_then_the_demo_can_start(
    qtbot, home, settings, dialogs, monkeypatch, held_conversion
):
    from app.shell.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "warn", lambda self, *a: dialogs.warn(*a))
    window = MainWindow(settings, home, "test", background=False, prepare_demo=True)
    qtbot.addWidget(window)
    window.show()
    data, setup = window.data_page, window.train_page.setup

    # While it converts: the rows are checked without the model, nothing reports it missing.
    qtbot.waitUntil(
        lambda: (
            window.demo.is_preparing()
            and data.document is not None
            and not data.reviewing()
            and window.tasks.active() == 0
        ),
        timeout=30000,
    )
    assert window.status_bar.busy_label.text().startswith("Preparing the demo model")
    data.side.setCurrentWidget(data.trained)
    assert data.trained.message.text().startswith("Preparing the demo model")
    qtbot.waitUntil(lambda: setup.top_errors.text().startswith("Preparing the demo model"), timeout=5000)
    assert not setup.start_button.isEnabled()
    assert "does not exist" not in setup.top_errors.text() + setup.estimate_label.text()
    chat = window.chat_page
    assert not chat.load_button.isEnabled()  # Load waits too, instead of failing on a missing folder
    qtbot.wait(300)
    assert dialogs.warnings == []

    held_conversion.touch()  # the conversion completes
    qtbot.waitUntil(lambda: window.demo.process is None, timeout=30000)
    qtbot.waitUntil(lambda: "Estimated GPU memory" in setup.estimate_label.text(), timeout=30000)
    assert setup.start_button.isEnabled()
    assert "not in the library" not in setup.model.currentText() and "SmolLM2" in setup.model.currentText()
    assert setup.top_errors.text() == "" and chat.load_button.isEnabled()
    # The Data tab checked the rows again with the model: token lengths and what each row trains.
    qtbot.waitUntil(lambda: data.checks.histogram is not None and not data.reviewing(), timeout=60000)
    qtbot.waitUntil(lambda: data.base_model.tokenizer is not None, timeout=60000)
    assert not data.trained.message.isVisible()
    assert dialogs.warnings == []
    window.close()
    window.tasks.wait(5000)
