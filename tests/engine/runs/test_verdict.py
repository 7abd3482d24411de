"""The one judgement of a run (engine.runs.verdict): every state and every way a run ends."""

from __future__ import annotations

import pytest

from engine.runs.verdict import STATE_HEADINGS, STATE_WORDS, judge_run


def status(state, **fields):
    return {"type": "status", "time": 1.0, "state": state, **fields}


def test_a_run_is_done_only_when_its_last_status_says_so():
    verdict = judge_run(status("done", step=8), alive=False)
    assert (verdict.state, verdict.message, verdict.hint) == ("done", "Finished: the adapter is saved.", "")
    # A live engine does not change a final word: the status is the truth.
    assert judge_run(status("done"), alive=True).state == "done"
    assert judge_run(status("saving", step=8), alive=False, exit_code=0).state == "interrupted"


def test_a_run_stopped_early_is_done_and_says_why():
    early = status("done", step=16, reason="early_stopping", message="Stopped early: the loss rose.")
    verdict = judge_run(early, alive=False)
    assert (verdict.state, verdict.message) == ("done", "Stopped early: the loss rose.")


def test_a_stopped_and_a_paused_run_say_where_and_that_they_can_resume():
    stopped = judge_run(status("stopped", step=7), alive=False, exit_code=3)
    assert stopped.state == "stopped"
    assert stopped.text == "Stopped at step 7; a checkpoint is saved, so you can resume."
    paused = judge_run(status("stopped", step=7, paused=True), alive=False)
    assert paused.state == "paused"
    assert paused.text == "Paused at step 7; a checkpoint is saved, so you can resume."
    # Stopped before training began: no checkpoint to speak of; its own words are kept.
    early = judge_run(status("stopped", step=0, message="Stopped before training started."), alive=False)
    assert (early.state, early.text) == ("stopped", "Stopped before training started.")


def test_a_failed_run_carries_its_error_and_hint():
    error = {
        "type": "error",
        "kind": "oom",
        "message": "Out of memory while training.",
        "hint": "Try: lower training.batch_size.",
    }
    verdict = judge_run(status("failed"), error, alive=False, exit_code=2)
    assert (verdict.state, verdict.message, verdict.hint) == ("failed", error["message"], error["hint"])
    assert verdict.text == "Out of memory while training. Try: lower training.batch_size."
    assert judge_run(status("failed"), None, alive=False).message == "The run failed."  # its error was lost


@pytest.mark.parametrize("state", ["loading", "training", "saving"])
def test_a_live_engine_is_running_in_its_phase(state):
    verdict = judge_run(status(state), alive=True)
    assert (verdict.state, verdict.phase, verdict.shown, verdict.message) == ("running", state, state, "")


def test_a_live_engine_that_wrote_nothing_yet_is_starting():
    verdict = judge_run(None, alive=True, started=False)
    assert (verdict.state, verdict.shown) == ("running", "starting")


def test_an_engine_gone_without_a_final_status_was_interrupted_never_running():
    killed = judge_run(status("training", step=5), alive=False, exit_code=-9, error_line="")
    assert killed.state == "interrupted"
    assert "exit code -9" in killed.message and "killed or crashed" in killed.message
    assert killed.hint == "Resume continues from the last complete checkpoint."
    crashed = judge_run(status("loading"), alive=False, exit_code=1, error_line="internal error: boom")
    assert "(exit code 1): internal error: boom." in crashed.message
    # Found dead on disk (no exit code known): still interrupted, with no code to quote.
    found = judge_run(status("training"), alive=False)
    assert found.state == "interrupted" and "exit code" not in found.message
    # An engine we launched that died before writing anything was not "new": it was interrupted.
    assert judge_run(None, alive=False, started=False, exit_code=-11).state == "interrupted"


def test_an_engine_that_refused_to_start_says_why_in_its_own_words():
    line = "training.max_steps = 4 is too few. Set more."
    refused = judge_run(None, alive=False, exit_code=2, error_line=line)
    assert (refused.state, refused.text) == ("refused", "training.max_steps = 4 is too few. Set more.")
    unknown = judge_run(None, alive=False, exit_code=2)
    assert unknown.state == "refused" and "engine-output.log" in unknown.text


def test_a_run_folder_with_no_events_and_no_engine_is_new():
    verdict = judge_run(None, alive=False, started=False)
    assert (verdict.state, verdict.message) == ("new", "")


def test_every_state_has_a_word_and_a_heading():
    states = ("running", "done", "stopped", "paused", "failed", "interrupted", "refused", "new")
    assert set(states) <= STATE_WORDS.keys() and set(states) <= STATE_HEADINGS.keys()
    assert {"starting", "loading", "training", "saving"} <= STATE_HEADINGS.keys()
    assert STATE_WORDS["new"] == "not started"
