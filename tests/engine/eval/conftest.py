"""Shared fixtures of the evaluation tests."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def small_probes(tmp_path_factory, monkeypatch):
    """A few items of each shipped probe: the mechanics are the same, the tiny model's time is not."""
    from engine.eval import probes

    folder = tmp_path_factory.mktemp("probes")
    for name, keep in (("forgetting", 4), ("bias", 2), ("general", 2)):
        lines = probes.probe_path(name).read_text(encoding="utf-8").splitlines()
        by_category: dict[str, list[str]] = {}
        for line in lines:
            by_category.setdefault(json.loads(line).get("category", ""), []).append(line)
        (folder / f"{name}.jsonl").write_text(
            "\n".join(x for c in by_category.values() for x in c[:keep]) + "\n"
        )
    monkeypatch.setattr(probes, "probe_path", lambda name: folder / f"{name}.jsonl")
