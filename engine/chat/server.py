"""`whetstone-engine chat-server`: keep one chat model loaded and answer JSON lines on stdin.

The app runs one server process per model it chats with (two in compare mode), so torch,
generation and an out-of-memory crash stay out of the GUI process. One JSON object per
line in each direction; every line written is flushed.

Requests (stdin):
  {"op": "load", "model": DIR, "adapter": DIR|null, "device": "auto"|"cpu"|"cuda"}
  {"op": "generate", "id": ID, "messages": [{"role", "content"}...], "settings": {...}}
  {"op": "cancel", "id": ID}        handled at once by the stdin thread, also mid-token
  {"op": "unload"}    {"op": "quit"}    (stdin EOF is a quit)

Events (stdout):
  {"type": "loading", "message": ...}                          progress while loading
  {"type": "loaded", "model", "adapter", "device", "memory_bytes", "memory_kind",
   "weights_bytes", "seconds"}
  {"type": "chunk", "id", "text"}                              first at once, then <= ~30/s
  {"type": "done", "id", "text", "stats": ReplyStats.to_dict()}  text == all chunks joined
  {"type": "unloaded"}
  {"type": "error", "op", "id"?, "kind", "message", "hint"}    the server keeps running;
                                 a load error also says "still_loaded": whether a model is loaded

Every accepted generate ends in exactly one `done` or one `error` carrying its id. A
generate while another reply is running (or waiting) is refused with kind "busy"; load and
unload wait until the running reply ends. A load checks the new folders before it frees the
current model, so a wrong path leaves the loaded model usable. `memory_bytes` is the CUDA
memory allocated ("cuda_allocated") or the growth of the process's resident memory
("rss_growth"); `weights_bytes` is the size of the model's tensors.

On start a background thread imports torch, transformers and bitsandbytes (~10 s on a slow
machine), so a server started before the user picks a model loads it that much sooner.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import sys
import threading
import time
import traceback
from typing import IO, Any

from engine.errors import ConfigError, DataError, ModelError, UserError, is_out_of_memory

CHUNKS_PER_SECOND = 30
DEVICES = ("auto", "cpu", "cuda")
_QUIT = object()


def add_parser(sub) -> None:
    """Add the `chat-server` command to the caller's subparsers."""
    sub.add_parser(
        "chat-server",
        help="(used by the app) keep a chat model loaded; JSON-line requests on stdin, events on stdout",
    )


def run(args) -> int:
    # The protocol owns the real stdout; anything else printed (by us or a library, Python or C)
    # goes to stderr, so a stray line can never corrupt the stream the app parses.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", errors="replace")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    code = ChatServer(sys.stdin.buffer, out).serve()
    out.flush()
    sys.stderr.flush()
    # Exit now: a daemon thread blocked reading stdin or still importing torch must neither
    # hold up nor abort the interpreter's shutdown (nothing is left to clean up).
    os._exit(code)


def _error(op: str | None, exc: BaseException, reply_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "error", "op": op}
    if reply_id is not None:
        event["id"] = reply_id
    if isinstance(exc, UserError):
        event.update(kind=exc.kind, message=exc.message, hint=exc.hint)
    elif is_out_of_memory(exc):
        hint = (
            "Unload the other model, use a smaller model, a shorter conversation or fewer new tokens."
            if op == "generate"
            else "Unload the other model or pick a smaller model, or load it on the CPU."
        )
        event.update(kind="oom", message="Out of memory.", hint=hint)
    else:
        sys.stderr.write(traceback.format_exc())
        event.update(
            kind="internal",
            message=f"{type(exc).__name__}: {exc}",
            hint="This is a bug in Whetstone; the engine's stderr has the traceback.",
        )
    return event


class ChatServer:
    """The request loop: a stdin thread parses lines; the main thread loads and generates."""

    def __init__(self, stdin: IO[bytes], stdout: IO[str]) -> None:
        self._in = stdin
        self._out = stdout
        self._write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._reply: tuple[str, threading.Event] | None = None
        """The accepted generate (id, cancel event), from acceptance until its done/error."""
        self.model = None
        self.tokenizer = None
        self._warm = threading.Thread(target=_import_libraries, name="whetstone-chat-warm-up", daemon=True)

    # ------------------------------------------------------------------ plumbing

    def send(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False) + "\n"
        with self._write_lock:
            try:
                self._out.write(line)
                self._out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the app is gone; stdin EOF ends the loop

    def serve(self) -> int:
        import engine.chat.loading  # noqa: F401  (engine modules here, libraries on the warm-up thread)

        self._warm.start()
        threading.Thread(target=self._read_stdin, name="whetstone-chat-stdin", daemon=True).start()
        while (item := self._work.get()) is not _QUIT:
            op, request, reply = item
            try:
                if op == "generate":
                    self._generate(request, reply)
                elif op == "load":
                    self._load(request)
                else:
                    self._unload(request)
            except BaseException as exc:  # report, keep serving
                event = _error(op, exc, reply[0] if reply else None)
                if op == "load":  # a wrong folder is refused before the current model is freed
                    event["still_loaded"] = self.model is not None
                self._release(reply)
                self.send(event)
            finally:
                self._release(reply)
        self._free()
        return 0

    def _release(self, reply: tuple[str, threading.Event] | None) -> None:
        """The reply ended: accept the next generate. Done *before* its last event is written,
        as the app may send the next request the moment it reads that event."""
        with self._lock:
            if reply is not None and self._reply is reply:
                self._reply = None

    def _read_stdin(self) -> None:
        for raw in self._in:
            if raw.strip():
                self._accept(raw)
        self._quit()

    def _quit(self) -> None:
        with self._lock:
            if self._reply is not None:
                self._reply[1].set()
        self._work.put(_QUIT)

    def _accept(self, raw: bytes) -> None:
        """Parse one request line (stdin thread); cancel and refusals are answered right here."""
        try:
            request = json.loads(raw.decode("utf-8", "replace"))
        except ValueError as exc:
            self._refuse(None, "protocol", f"Not a JSON line: {exc}.", "Send one JSON object per line.")
            return
        op = request.get("op") if isinstance(request, dict) else None
        if op == "quit":
            self._quit()
        elif op == "cancel":
            with self._lock:
                if self._reply is not None and self._reply[0] == request.get("id"):
                    self._reply[1].set()  # a cancel for a reply that already ended is no error
        elif op == "generate":
            reply_id = request.get("id")
            if not isinstance(reply_id, str) or not reply_id:
                self._refuse("generate", "protocol", 'A generate request needs an "id" string.')
                return
            with self._lock:
                busy = self._reply is not None
                if not busy:
                    self._reply = reply = (reply_id, threading.Event())
            if busy:
                self._refuse(
                    "generate",
                    "busy",
                    "Another reply is still being generated.",
                    "Wait for it to end, or cancel it first.",
                    reply_id,
                )
            else:
                self._work.put((op, request, reply))
        elif op in ("load", "unload"):
            self._work.put((op, request, None))
        else:
            name = op if isinstance(op, str) else None
            self._refuse(
                name,
                "protocol",
                f"Unknown request {name or request!r}.",
                "Known ops: load, generate, cancel, unload, quit.",
            )

    def _refuse(
        self, op: str | None, kind: str, message: str, hint: str = "", reply_id: str | None = None
    ) -> None:
        self.send(_error(op, UserError(message, hint, kind), reply_id))

    # ------------------------------------------------------------------ requests

    def _free(self) -> None:
        if self.model is None and self.tokenizer is None:
            return
        self.model = self.tokenizer = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        _trim_heap()

    def _load(self, request: dict[str, Any]) -> None:
        from engine.chat.loading import check_for_chat, load_for_chat
        from engine.config import ModelConfig

        started = time.perf_counter()
        path, adapter, device = (
            request.get("model"),
            request.get("adapter"),
            request.get("device") or "auto",
        )
        if not isinstance(path, str) or not path:
            raise ModelError("No model folder given.", "Pick a local model folder.")
        if adapter is not None and not isinstance(adapter, str):
            raise ConfigError(f"adapter = {adapter!r} is not allowed: it must be a folder path or null.")
        if device not in DEVICES:
            raise ConfigError(f"device = {device!r} is not allowed: it must be one of {', '.join(DEVICES)}.")
        model_cfg = ModelConfig(path=path)
        # A wrong folder or adapter is reported before the current model goes.
        _folder, checked = check_for_chat(model_cfg, adapter or None)
        adapter_dir = checked.path if checked is not None else None

        if self._warm.is_alive():
            self.send({"type": "loading", "message": "Loading the inference libraries…"})
        self._warm.join()  # libraries before the memory baseline: the figure is the model's
        import psutil
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise ModelError(
                "No CUDA GPU is available to this engine.",
                "Load the model on the CPU (device auto or cpu).",
            )
        if self.model is not None:
            self.send({"type": "loading", "message": "Freeing the previous model…"})
        self._free()
        on_gpu = device == "cuda"
        before = torch.cuda.memory_allocated() if on_gpu else psutil.Process().memory_info().rss

        model, tokenizer = load_for_chat(
            path,
            adapter or None,
            model_cfg=model_cfg,
            device=device,
            progress=lambda message: self.send({"type": "loading", "message": message}),
        )
        self.model, self.tokenizer = model, tokenizer
        if on_gpu:
            memory, memory_kind = torch.cuda.memory_allocated(), "cuda_allocated"
        else:
            memory, memory_kind = max(0, psutil.Process().memory_info().rss - before), "rss_growth"
        weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
        self.send(
            {
                "type": "loaded",
                "model": path,
                "adapter": str(adapter_dir) if adapter_dir else None,
                "device": device,
                "memory_bytes": int(memory),
                "memory_kind": memory_kind,
                "weights_bytes": int(weights),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    def _unload(self, _request: dict[str, Any]) -> None:
        self._free()
        self.send({"type": "unloaded"})

    def _generate(self, request: dict[str, Any], reply: tuple[str, threading.Event]) -> None:
        from engine.chat.loading import GenerationSettings, start_reply

        reply_id, cancel = reply
        if self.model is None:
            raise UserError("No model is loaded.", "Load a model before sending a message.", "not_loaded")
        messages = request.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise DataError('messages must be a list of {"role": ..., "content": ...} objects with text.')
        settings = GenerationSettings.from_dict(request.get("settings") or {})
        stream = start_reply(self.model, self.tokenizer, messages, settings, cancel)
        pending, last_write = "", None
        for text in stream:
            pending += text
            now = time.perf_counter()
            if last_write is None or now - last_write >= 1 / CHUNKS_PER_SECOND:
                self.send({"type": "chunk", "id": reply_id, "text": pending})
                pending, last_write = "", now
        if pending:
            self.send({"type": "chunk", "id": reply_id, "text": pending})
        self._release(reply)
        self.send({"type": "done", "id": reply_id, "text": stream.text, "stats": stream.stats.to_dict()})


def _import_libraries() -> None:
    """Warm-up on start: importing these takes seconds that the first load no longer waits for."""
    try:
        import bitsandbytes  # noqa: F401
        import psutil  # noqa: F401
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    except Exception:  # the load that needs them reports it
        traceback.print_exc()


def _trim_heap() -> None:
    """Give freed memory back to the OS (glibc keeps it otherwise), so RSS figures stay honest."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
