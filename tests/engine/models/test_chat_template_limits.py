"""Chat templates from a model folder render sandboxed and within limits (issue 18 item 13).

Nested `range(100000)` loops hung `data check --model`; `{{ 'a' * 10**10 }}` exhausted memory;
a sandbox refusal, a syntax error or `raise_exception` in `generate` gave exit 1. Now every
template failure is one clear message naming the model folder, and good templates render
exactly as transformers renders them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import engine.models.chat_template as ct
from engine.cli.main import main
from engine.errors import ModelError
from engine.models.chat_template import TemplateRefused, render_chat_template

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]
GOOD = {
    "chatml": "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "llama3-like": "{% for m in messages %}{% set c = '<|start_header_id|>' + m['role']"
    " + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set c = eos_token + c %}"
    "{% endif %}{{ c }}{% endfor %}",
    "generation tag": "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}"
    "{% endgeneration %}{% else %}{{ m.role ~ ': ' ~ m.content }}{% endif %}\n{% endfor %}",
    "namespace, tojson, dict": "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
    "{{ ns.n }}{{ m | tojson }}{{ dict(a=1) | tojson }}{% endfor %}",
    "loop features": "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ loop.revindex }}"
    "{% if loop.last %}L{% endif %}{{ loop.cycle('x', 'y') }}{% if loop.previtem %}"
    "{{ loop.previtem.content }}{% endif %}{% endfor %}{% for m in messages if m.role == 'tool' %}"
    "{{ m.content }}{% else %}none{% endfor %}{% for k, v in {'a': 1}.items() %}{{ k }}{{ v }}"
    "{% endfor %}{{ messages | map(attribute='role') | join(',') }}{{ bos_token is defined }}",
    "raise on bad roles": "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}"
    "{% endif %}{{ m.content * 2 }}{% endfor %}{{ '%s|%d' % ('x', 3) }}"
    "{{ 'a-b'.replace('-', '+') }}{{ ['p', 'q'] | join(', ') }}{{ 'c'.center(5) }}",
}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)


@pytest.mark.parametrize("name", list(GOOD))
@pytest.mark.parametrize("prompt", [False, True])
def test_good_templates_render_exactly_like_transformers(tokenizer, name, prompt):
    expected = tokenizer.apply_chat_template(
        CONVERSATION, chat_template=GOOD[name], tokenize=False, add_generation_prompt=prompt
    )
    assert (
        render_chat_template(tokenizer, CONVERSATION, add_generation_prompt=prompt, template=GOOD[name])
        == expected
    )


def test_the_model_folders_own_template_is_used(tokenizer):
    expected = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert render_chat_template(tokenizer, CONVERSATION, add_generation_prompt=True) == expected


HOSTILE = {
    "nested range loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "takes longer than",
    ),
    "loops over a list": (
        "{% set r = range(100000) | list %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
        "takes longer than",
    ),
    "recursion fan-out": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "takes longer than",
    ),
    "string times 10**10": ("{{ 'a' * 10**10 }}", "asks for a size of 10,000,000,000"),
    "list times 10**9": ("{{ ([1] * 10**9) | length }}", "asks for a size"),
    "power tower": ("{{ 2 ** (10 ** 10) }}", "a number too large"),
    "doubling with ~": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "builds a value of more than",
    ),
    "doubling a list with +": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "builds a value of more than",
    ),
    "center width": ("{{ 'a'.center(10**10) }}", "asks for a size"),
    "center filter": ("{{ 'a' | center(10**10) }}", "asks for a size"),
    "printf width": ("{{ '%1000000000d' % 1 }}", "asks for a size"),
    "format width": ("{{ '{:>1000000000}'.format('a') }}", "asks for a size"),
    "replace blow-up": ("{% set s = 'a' * 3000000 %}{{ s.replace('', s) }}", "asks for a size"),
    "join blow-up": ("{% set s = 'a' * 3000000 %}{{ s.join([s, s, s]) }}", "asks for a size"),
    "output flood": ("{% for i in range(100000) %}{{ 'x' * 10000 }}{% endfor %}", "output grows beyond"),
    "sandbox escape": ("{{ [].append(1) }}", "sandbox forbids"),
    "dunder": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "sandbox forbids"),
    "syntax error": ("{% for %}", "has an error on line 1"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_templates_are_a_model_error_naming_the_folder(tokenizer, name, monkeypatch):
    monkeypatch.setattr(ct, "MAX_SECONDS", 0.3)  # the real limit is longer; the behaviour is the same
    template, words = HOSTILE[name]
    with pytest.raises(ModelError) as info:
        render_chat_template(tokenizer, CONVERSATION, add_generation_prompt=True, template=template)
    assert words in info.value.message and str(tokenizer.name_or_path) in info.value.message
    assert info.value.hint


def test_a_template_refusing_a_conversation_is_a_row_problem_not_a_model_error(tokenizer):
    template = (
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}"
        "{% endif %}{{ m.content }}{% endfor %}"
    )
    with pytest.raises(TemplateRefused, match="refuses this conversation: no system"):
        render_chat_template(tokenizer, CONVERSATION, add_generation_prompt=False, template=template)
    assert render_chat_template(tokenizer, CONVERSATION[1:], add_generation_prompt=False, template=template)


@pytest.fixture
def model_with(tiny_model_dir, tmp_path):
    def make(template: str) -> Path:
        folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model", dirs_exist_ok=True))
        (folder / "chat_template.jinja").write_text(template)
        return folder

    return make


@pytest.mark.parametrize(
    "template, words",
    [
        ("{{ [].append(1) }}", "sandbox forbids"),
        ("{% for %}", "has an error on line 1"),
        ("{{ raise_exception('roles must alternate') }}", "refuses this conversation: roles must alternate"),
        ("{{ 'a' * 10**10 }}", "asks for a size"),
    ],
)
def test_generate_with_a_bad_template_is_one_error_line(model_with, template, words, capsys):
    folder = model_with(template)
    assert main(["generate", "--model", str(folder), "--prompt", "hi", "--max-new-tokens", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and str(folder) in err and err.count("\n") == 1


def test_data_check_with_an_endless_template_stops_with_an_error(model_with, facts_file, monkeypatch, capsys):
    monkeypatch.setattr(ct, "MAX_SECONDS", 0.3)
    folder = model_with(HOSTILE["nested range loops"][0])
    assert main(["data", "check", str(facts_file), "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "takes longer than 0.3 s" in err and str(folder) in err
