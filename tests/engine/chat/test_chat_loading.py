"""engine.chat: no import cycle, and one loading function for the CLI, the demo and the chat server.

Issue 19: engine/chat/replies.py and engine/chat/loading.py imported each other, and the chat
server's `_load` re-implemented `load_for_chat`.
"""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import engine.chat

CHAT = Path(engine.chat.__file__).parent


def _engine_imports(module: Path) -> set[str]:
    """Every engine.chat module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine.chat"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("engine.chat"))
    return found


def test_no_module_of_engine_chat_imports_one_that_imports_it():
    graph = {f"engine.chat.{p.stem}": _engine_imports(p) for p in CHAT.glob("*.py") if p.stem != "__init__"}
    for module, imports in graph.items():
        for other in imports:
            assert module not in graph.get(other, set()), f"{module} and {other} import each other"


def test_the_chat_server_loads_through_load_for_chat(tiny_model_dir, monkeypatch):
    import engine.chat.loading as loading
    from engine.chat.server import ChatServer

    calls = []

    class Model:
        def parameters(self):
            return iter(())

        def buffers(self):
            return iter(())

    def fake_load(path, adapter=None, quant=None, model_cfg=None, device=None, progress=None):
        calls.append((path, adapter, device))
        progress("Loading the tokenizer…")
        return Model(), object()

    monkeypatch.setattr(loading, "load_for_chat", fake_load)
    out = io.StringIO()
    server = ChatServer(io.BytesIO(), out)
    server._warm.start()
    server._load({"op": "load", "model": str(tiny_model_dir), "device": "cpu"})
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert calls == [(str(tiny_model_dir), None, "cpu")]
    assert {"type": "loading", "message": "Loading the tokenizer…"} in events
    assert events[-1]["type"] == "loaded" and events[-1]["device"] == "cpu"
