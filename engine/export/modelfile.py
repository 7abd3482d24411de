"""An Ollama Modelfile next to an exported GGUF file: template, default system prompt, stop tokens.

Ollama does not run Jinja chat templates; it needs a Go template. We recognise the common
families from the model's own template (ChatML, Llama 3, Mistral [INST]) and write the
equivalent, so `ollama create` gives a model that formats turns and stops like the original.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from engine.errors import ModelError, UserError
from engine.util.files import write_new

# System messages are not rendered from .Messages: Ollama passes them as .System as well.
CHATML = """{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ if $last }}<|im_start|>assistant
{{ end }}
{{- else if eq .Role "assistant" }}<|im_start|>assistant
{{ .Content }}{{ if not $last }}<|im_end|>
{{ end }}
{{- end }}
{{- end }}"""

LLAMA3 = """{{- if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{ .Content }}{{ if not $last }}<|eot_id|>{{ end }}
{{- end }}
{{- end }}"""

MISTRAL = """{{- range $i, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and (eq (len (slice $.Messages $i)) 1) $.System }}[INST] {{ $.System }}

{{ .Content }}[/INST]
{{- else }}[INST] {{ .Content }}[/INST]
{{- end }}
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- end }}"""

# family -> (marker in the chat template, Go template, how the default system block looks)
_FAMILIES = {
    "chatml": ("<|im_start|>", CHATML, ("<|im_start|>system\n", "<|im_end|>")),
    "llama3": (
        "<|start_header_id|>",
        LLAMA3,
        ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
    ),
    "mistral": ("[INST]", MISTRAL, None),
}
_PROBE = "Whetstone-probe-7f3a"


def template_family(chat_template: str | None, vocab: dict[str, int]) -> str:
    """'chatml', 'llama3' or 'mistral'; ModelError if the template is none of them."""
    for family, (marker, _template, _system) in _FAMILIES.items():
        if chat_template and marker in chat_template:
            return family
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        return "chatml"  # no or an unknown template, but the vocabulary is ChatML's
    raise ModelError(
        "The model's chat template is not recognised, so no Ollama template can be written.",
        "Supported: ChatML (<|im_start|>), Llama 3 (<|start_header_id|>) and Mistral ([INST]).",
    )


def default_system_prompt(tokenizer, family: str) -> str | None:
    """The system prompt the chat template inserts when the conversation has none."""
    markers = _FAMILIES[family][2]
    if markers is None or not tokenizer.chat_template:
        return None
    from engine.errors import UserError
    from engine.models.chat_template import render_chat_template

    try:  # sandboxed and limited: a template from the model folder is foreign code
        text = render_chat_template(
            tokenizer, [{"role": "user", "content": _PROBE}], add_generation_prompt=False
        )
    except (ValueError, UserError):  # a template that fails on this input gets no default system prompt
        return None
    start, end = markers
    head = text.split(_PROBE)[0]
    if start not in head:
        return None
    body = head.split(start, 1)[1].split(end, 1)[0].strip()
    return body or None


def modelfile_path(gguf_file: str | Path) -> Path:
    """Where the Modelfile for `gguf_file` goes: next to it, as `<stem>.Modelfile`, so several
    exports (one base GGUF and many adapters) can share a folder; `ollama create -f` takes any name."""
    return Path(gguf_file).with_suffix(".Modelfile")


def refuse_existing_modelfile(gguf_file: str | Path) -> None:
    """UserError when a Modelfile is already there: an export never overwrites a file it did not write."""
    target = modelfile_path(gguf_file)
    if target.exists() or target.is_symlink():
        raise UserError(
            f"{target} already exists, and an export never overwrites a file it did not write.",
            "Move or rename that Modelfile, or export the GGUF into another folder.",
            kind="io",
        )


def _relative(gguf_file: Path, adapter: str | Path | None) -> str:
    """./name when the Modelfile sits beside the file (Ollama resolves it from there), else absolute."""
    if adapter is None or Path(adapter).resolve().parent == gguf_file.resolve().parent:
        return f"./{gguf_file.name}"
    return str(gguf_file.resolve())


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_modelfile(gguf_file: str | Path, model_dir: str | Path, adapter: str | Path | None = None) -> Path:
    """Write <gguf folder>/Modelfile for `gguf_file`, from the tokenizer in `model_dir`.

    With `adapter` (a GGUF LoRA adapter), `gguf_file` is the base: the Modelfile goes next to the
    adapter, with `FROM <base>` (relative when in the same folder) and `ADAPTER ./<adapter>`.
    """
    from transformers import AutoTokenizer, GenerationConfig

    from engine.models.loading import end_of_turn_ids

    gguf_file, model_dir = Path(gguf_file), Path(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"The tokenizer in {model_dir} cannot be loaded: {exc}", "Check the model folder."
        ) from None
    family = template_family(tokenizer.chat_template, tokenizer.get_vocab())
    try:
        generation = GenerationConfig.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError):
        generation = None
    stops = tokenizer.convert_ids_to_tokens(
        end_of_turn_ids(tokenizer, SimpleNamespace(generation_config=generation))
    )
    template = _FAMILIES[family][1]
    if '"""' in template:  # cannot happen with our templates; guards the Modelfile quoting
        raise ModelError("The chat template cannot be quoted in a Modelfile.", "")
    lines = [f"FROM {_relative(gguf_file, adapter)}", "", f'TEMPLATE """{template}"""', ""]
    if adapter is not None:
        lines[1:1] = [f"ADAPTER ./{Path(adapter).name}"]
    system = default_system_prompt(tokenizer, family)
    if system:
        lines += [f'SYSTEM """{system.replace(chr(34) * 3, chr(39) * 3)}"""', ""]
    lines += [f"PARAMETER stop {_quote(token)}" for token in dict.fromkeys(stops) if token]
    target = modelfile_path(adapter or gguf_file)
    refuse_existing_modelfile(adapter or gguf_file)
    write_new(target, ("\n".join(lines) + "\n").encode("utf-8"))  # never replaces one that appeared meanwhile
    return target
