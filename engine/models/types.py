"""What the installed transformers supports, read without importing it.

`import transformers` (even `from transformers import CONFIG_MAPPING`) takes seconds and
pulls in torch, which a GUI scan thread or a quick check cannot afford. The lists we need
live in plain data files inside the transformers package, so we read those files instead
and fall back to a real import only if their layout ever changes.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)


def _transformers_dir() -> Path:
    spec = importlib.util.find_spec("transformers")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("transformers is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _dict_keys(tree: ast.AST, wanted: str) -> set[str]:
    """String keys of every dict literal in a top-level statement that names `wanted`."""
    keys: set[str] = set()
    for stmt in getattr(tree, "body", []):
        if wanted not in {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}:
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Dict):
                keys.update(
                    k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                )
    return keys


@lru_cache(maxsize=1)
def builtin_model_types() -> frozenset[str]:
    """Every `model_type` transformers knows without remote code (CONFIG_MAPPING's keys)."""
    try:
        auto = _transformers_dir() / "models" / "auto"
        # auto_mappings.py only imports OrderedDict, so running it on its own is cheap and safe.
        spec = importlib.util.spec_from_file_location("_whetstone_auto_mappings", auto / "auto_mappings.py")
        if spec is None or spec.loader is None:
            raise ImportError("auto_mappings.py not found")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names = set(module.CONFIG_MAPPING_NAMES)
        # configuration_auto.py adds a few special names (e.g. "gpt-sw3") on top of the file.
        source = (auto / "configuration_auto.py").read_text(encoding="utf-8")
        names |= _dict_keys(ast.parse(source), "CONFIG_MAPPING_NAMES")
        if len(names) < 100:  # the real list has hundreds; fewer means the layout changed
            raise ValueError(f"only {len(names)} model types found")
        return frozenset(names)
    except Exception as exc:  # any surprise: the slow but authoritative way
        log.debug("reading transformers' model types from files failed (%s); importing it", exc)
        from transformers import CONFIG_MAPPING

        return frozenset(CONFIG_MAPPING.keys())


@lru_cache(maxsize=1)
def causal_lm_model_types() -> frozenset[str]:
    """Every `model_type` AutoModelForCausalLM loads (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES's keys)."""
    try:
        modeling_auto = _transformers_dir() / "models" / "auto" / "modeling_auto.py"
        names = _assigned_dict_keys(modeling_auto, "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES")
        if len(names) < 50:  # the real list has well over a hundred; fewer means the layout changed
            raise ValueError(f"only {len(names)} causal LM types found")
        return frozenset(names)
    except Exception as exc:
        log.debug("reading transformers' causal LM types from files failed (%s); importing it", exc)
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        return frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _assigned_dict_keys(file: Path, name: str) -> set[str]:
    """The string keys of `name = {...}` or `name = OrderedDict([("key", ...), ...])` in `file`."""
    for stmt in ast.parse(file.read_text(encoding="utf-8")).body:
        targets = [t.id for t in getattr(stmt, "targets", []) if isinstance(t, ast.Name)]
        if targets != [name]:
            continue
        if isinstance(stmt.value, ast.Dict):
            keys = stmt.value.keys
        else:
            pairs = [node for node in ast.walk(stmt.value) if isinstance(node, ast.Tuple) and node.elts]
            keys = [pair.elts[0] for pair in pairs]
        return {k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    raise ValueError(f"{name} not found in {file.name}")


@lru_cache(maxsize=1)
def gguf_architectures() -> frozenset[str]:
    """GGUF `general.architecture` values transformers can load.

    Two loaders exist in transformers 5.x: the legacy one (GGUF_CONFIG_MAPPING's model keys in
    integrations/ggml.py) and the packed one (GGUF_ARCHS in integrations/gguf/); either will do.
    """
    not_models = {"general", "tokenizer"}
    try:
        integrations = _transformers_dir() / "integrations"
        names = _assigned_dict_keys(integrations / "ggml.py", "GGUF_CONFIG_MAPPING") - not_models
        packed = integrations / "gguf" / "gguf_conversion_mapping.py"
        if packed.is_file():
            names |= _assigned_dict_keys(packed, "GGUF_ARCHS")
        return frozenset(names)
    except Exception as exc:
        log.debug("reading transformers' GGUF architectures from files failed (%s); importing it", exc)
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

        return frozenset(set(GGUF_CONFIG_MAPPING) - not_models)


def gguf_architecture_supported(architecture: str) -> bool:
    """Mirrors the renames transformers applies before its own check (qwen2moe -> qwen2_moe, ...)."""
    supported = gguf_architectures()
    name = architecture.replace("-", "_")
    candidates = {architecture, name, re.sub(r"moe$", "_moe", name)}
    if "t5" in name:
        candidates.add("t5")
    return bool(candidates & supported)
