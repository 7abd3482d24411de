"""Rendering a model folder's chat template safely: sandboxed, with limits on time and size.

A chat template is code that came with a model folder. transformers renders it in jinja2's
ImmutableSandboxedEnvironment, which stops escapes but not a template that loops for hours
(`range(100000)` nested) or builds a 10 GB string (`'a' * 10**10`). We render through our own
compiled sandbox with the same globals as transformers 5.x (raise_exception, strftime_now,
tojson, dict, namespace, the `generation` tag), plus:

- a deadline, checked on every loop iteration, call, attribute, operator and filter;
- a size cap on every value an operator, call, filter or `~` produces, checked *before*
  the operations that can multiply a size at once (`*`, `**`, `%`, widths, replace, join);
- a cap on the rendered output.

A template that breaks a limit, does not compile or trips the sandbox is a ModelError naming
the model folder (the whole model is unusable); one that refuses a conversation (its own
raise_exception, e.g. "roles must alternate") is a TemplateRefused, a ValueError that data
checks count against that row.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from functools import lru_cache
from typing import Any

from engine.errors import DataError, ModelError

MAX_SECONDS = 5.0
MIN_MAX_CHARS = 4 * 2**20  # output and value cap, plus 8 characters per character of input
MAX_POWER_BITS = 4096
HINT = (
    "Fix or remove its chat template (chat_template.jinja, or chat_template in tokenizer_config.json), "
    "or pick another model."
)
_ITER, _CHECKED = "_whetstone_iter", "_whetstone_checked"
_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string


class TemplateRefused(ValueError):
    """The template refused this conversation (raise_exception or an error on these messages)."""


class _Limit(Exception):
    """A render broke a time or size limit (internal; turned into a ModelError)."""


class _State(threading.local):
    deadline = float("inf")
    max_chars = MIN_MAX_CHARS


_STATE = _State()


def _tick() -> None:
    if time.monotonic() > _STATE.deadline:
        raise _Limit(f"it takes longer than {MAX_SECONDS:g} s to render (does it loop without end?)")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0


def _check(value: Any) -> Any:
    if _size(value) > _STATE.max_chars:
        raise _Limit(f"it builds a value of more than {_STATE.max_chars:,} characters")
    return value


def _refuse_over(n: Any) -> None:
    if isinstance(n, int) and n > _STATE.max_chars:
        raise _Limit(f"it asks for a size of {n:,}, beyond the {_STATE.max_chars:,} allowed")


def _guard_format(text: Any, args: Any) -> None:
    """`'%10000000000s' % x` or `'{:>10000000000}'.format(x)` would allocate before any check."""
    if isinstance(text, str) and _WIDTH.search(text):
        for digits in _WIDTH.findall(text):
            _refuse_over(int(digits))
    for arg in args if isinstance(args, tuple | list) else (args,):
        if isinstance(arg, int) and not isinstance(arg, bool) and ("*" in str(text) or "{" in str(text)):
            _refuse_over(arg)


def _guard_iter(iterable: Any):
    for item in iterable:
        _tick()
        yield item


def _guard_checked(value: Any) -> Any:
    _tick()
    return _check(value)


def _bound_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        _refuse_over(len(text) + hits * len(new))


def _bound_join(separator: Any, items: Any) -> None:
    if isinstance(separator, str) and isinstance(items, list | tuple):
        _refuse_over(len(separator) * max(0, len(items) - 1) + sum(_size(i) for i in items))


def _precheck_method(obj: Any, args: tuple, kwargs: dict) -> None:
    """Sizes of str methods that can grow a string many times in one call."""
    name, owner = getattr(obj, "__name__", ""), getattr(obj, "__self__", None)
    wrapped = getattr(obj, "__wrapped__", None)  # the sandbox's wrapper around str.format
    if wrapped is not None and isinstance(getattr(wrapped, "__self__", None), str):
        _guard_format(wrapped.__self__, (*args, *kwargs.values()))
    if not isinstance(owner, str):
        return
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _refuse_over(args[0])
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            _refuse_over(len(owner) + owner.count("\t") * tab)
    elif name == "replace" and len(args) >= 2:
        _bound_replace(owner, *args[:3])
    elif name == "join" and args:
        _bound_join(owner, args[0])


def _guarded_filter(name: str, func):
    def run(*args: Any, **kwargs: Any) -> Any:
        _tick()
        values = [a for a in args if not _is_context(a)]
        if name in ("center", "indent", "slice", "batch", "wordwrap", "truncate"):
            for n in (*values[1:], *kwargs.values()):
                _refuse_over(n)
            if name == "indent" and values and isinstance(values[0], str):
                width = values[1] if len(values) > 1 else kwargs.get("width", 4)
                _refuse_over(
                    len(values[0])
                    + (values[0].count("\n") + 1) * (width if isinstance(width, int) else _size(width))
                )
        elif name == "format" and values:
            _guard_format(values[0], (*values[1:], *kwargs.values()))
        elif name == "replace" and len(values) >= 3:
            _bound_replace(*values[:4])
        elif name == "join" and values:
            separator = values[1] if len(values) > 1 else kwargs.get("d", "")
            _bound_join(separator, values[0])
        return _check(func(*args, **kwargs))

    for attribute in ("jinja_pass_arg",):  # keep jinja's pass_context/pass_eval_context marker
        if hasattr(func, attribute):
            setattr(run, attribute, getattr(func, attribute))
    return run


def _is_context(value: Any) -> bool:
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    return isinstance(value, Context | EvalContext)


@lru_cache(maxsize=1)
def _environment():
    import jinja2
    import jinja2.ext
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
    from jinja2.utils import Namespace
    from jinja2.visitor import NodeTransformer

    def wrap(name: str, node, like):
        call = nodes.Call(nodes.Name(name, "load"), [node], [], None, None)
        return call.set_lineno(like.lineno).set_environment(like.environment)

    class Guard(NodeTransformer):
        def visit_For(self, node):
            node = self.generic_visit(node)
            node.iter = wrap(_ITER, node.iter, node)
            return node

        def visit_Concat(self, node):
            return wrap(_CHECKED, self.generic_visit(node), node)

    class Generation(jinja2.ext.Extension):
        """transformers' `{% generation %}` marks assistant text; rendering just keeps the body."""

        tags = {"generation"}

        def parse(self, parser):
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

        def _parse(self, source, name, filename):
            return Guard().visit(super()._parse(source, name, filename))

        def call_binop(self, context, operator, left, right):
            if operator == "+":  # the common case, kept cheap: at most doubles, so checking after is enough
                result = left + right
                if type(result) in (str, list, tuple) and len(result) > _STATE.max_chars:
                    _check(result)
                return result
            _tick()
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if _size(seq) and isinstance(n, int):
                        _refuse_over(_size(seq) * n)
            elif operator == "**" and isinstance(left, int) and isinstance(right, int):
                if abs(left) > 1 and right * max(1, abs(left).bit_length()) > MAX_POWER_BITS:
                    raise _Limit(f"it computes {left} ** {right}, a number too large to be text")
            elif operator == "%" and isinstance(left, str):
                _guard_format(left, right)
            return _check(super().call_binop(context, operator, left, right))

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's own signature)
            _tick()
            _precheck_method(__obj, args, kwargs)
            return _check(super().call(__context, __obj, *args, **kwargs))

        def getattr(self, obj, attribute):
            _tick()
            return super().getattr(obj, attribute)

        def getitem(self, obj, argument):
            _tick()
            return super().getitem(obj, argument)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        _refuse_over(indent if isinstance(indent, int) else _size(indent))
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format):
        return datetime.now().strftime(format)

    class TemplateDict:  # dict() without attribute access to the dict type itself (as transformers)
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(Namespace):  # no underscore names: no way to CPython internals
        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for key in attrs:
                TemplateNamespace._check_name(key)
            Namespace.__init__(self, attrs)

        def __setitem__(self, key, value):
            TemplateNamespace._check_name(key)
            Namespace.__setitem__(self, key, value)

        @staticmethod
        def _check_name(key):
            if isinstance(key, str) and key.startswith("_"):
                raise SecurityError(f"chat templates cannot store {key!r} on a namespace")

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.filters = {name: _guarded_filter(name, func) for name, func in env.filters.items()}
    env.globals.update(
        raise_exception=raise_exception,
        strftime_now=strftime_now,
        dict=TemplateDict(),
        namespace=TemplateNamespace,
        **{_ITER: _guard_iter, _CHECKED: _guard_checked},
    )
    return env


@lru_cache(maxsize=16)
def _compile(template: str):
    return _environment().from_string(template)


def template_of(tokenizer, template: str | dict | None = None) -> str | None:
    """`template`, else the tokenizer's chat template; the default one of a named set."""
    chosen = template or getattr(tokenizer, "chat_template", None)
    if isinstance(chosen, dict):
        chosen = chosen.get("default") or next(iter(chosen.values()), None)
    return chosen if isinstance(chosen, str) and chosen else None


def render_chat_template(
    tokenizer,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool,
    template: str | dict | None = None,
) -> str:
    """The conversation as text, like tokenizer.apply_chat_template(..., tokenize=False), within limits.

    ModelError if the template cannot be used at all; TemplateRefused for this conversation.
    """
    import jinja2
    from jinja2.sandbox import SecurityError

    source = template_of(tokenizer, template)
    folder = getattr(tokenizer, "name_or_path", "") or "the model folder"
    if source is None:
        raise ModelError(f"The model in {folder} has no chat template.", "Pick a model with a chat template.")
    try:
        compiled = _compile(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ModelError(
            f"The chat template of {folder} has an error on line {exc.lineno}: {exc.message}.", HINT
        ) from None
    except RecursionError:
        raise ModelError(f"The chat template of {folder} is nested too deeply to be read.", HINT) from None
    plain = [{k: v for k, v in m.items() if v is not None} for m in messages]
    input_chars = sum(len(v) for m in plain for v in m.values() if isinstance(v, str))
    specials = {k: v for k, v in getattr(tokenizer, "special_tokens_map", {}).items() if isinstance(v, str)}
    _STATE.deadline = time.monotonic() + MAX_SECONDS
    _STATE.max_chars = MIN_MAX_CHARS + 8 * input_chars
    out, length = [], 0
    try:
        for chunk in compiled.generate(
            **specials,
            messages=plain,
            tools=None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
        ):
            length += len(chunk)
            if length > _STATE.max_chars:
                raise _Limit(f"its output grows beyond {_STATE.max_chars:,} characters")
            out.append(chunk)
    except _Limit as exc:
        raise ModelError(f"The chat template of {folder} cannot be used: {exc}.", HINT) from None
    except SecurityError as exc:
        raise ModelError(
            f"The chat template of {folder} tried something the sandbox forbids: {exc}", HINT
        ) from None
    except (RecursionError, MemoryError):
        raise ModelError(f"The chat template of {folder} recurses or grows without end.", HINT) from None
    except jinja2.TemplateError as exc:  # raise_exception, or an undefined value on these messages
        raise TemplateRefused(f"the chat template of {folder} refuses this conversation: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateRefused(
            f"the chat template of {folder} fails on this conversation: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        _STATE.deadline = float("inf")
    return "".join(out)


def encode_prompt(tokenizer, messages: list[dict[str, Any]]):
    """The prompt a reply to `messages` continues: chat template + generation prompt, as tensors."""
    if not messages:
        raise DataError("There is no message to reply to.")
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    if tokenizer.chat_template:
        try:
            prompt = render_chat_template(tokenizer, plain, add_generation_prompt=True)
        except TemplateRefused as exc:  # e.g. roles that do not alternate: say so, with the folder
            raise DataError(
                f"{str(exc)[:1].upper()}{str(exc)[1:]}.",
                "Change the conversation, or fix the model's chat template.",
            ) from None
    else:
        prompt = "\n".join(m["content"] for m in plain)
    return tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
