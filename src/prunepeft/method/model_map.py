"""The architecture map of a model: where its repeated blocks are, and which Linear plays which role inside a block.

Known families are looked up by ``config.model_type``; others are discovered from module names; both can be
overridden (``--layers-path``, ``--target ROLE=NAME``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunepeft.method.modules import WRAPPERS

ROLES = ("q", "k", "v", "o", "ffn_in", "ffn_out")

_BERT_LIKE = {
    "q": ("attention.self.query",),
    "k": ("attention.self.key",),
    "v": ("attention.self.value",),
    "o": ("attention.output.dense",),
    "ffn_in": ("intermediate.dense",),
    "ffn_out": ("output.dense",),
}
_LLAMA_LIKE = {
    "q": ("self_attn.q_proj",),
    "k": ("self_attn.k_proj",),
    "v": ("self_attn.v_proj",),
    "o": ("self_attn.o_proj",),
    "ffn_in": ("mlp.gate_proj", "mlp.up_proj"),
    "ffn_out": ("mlp.down_proj",),
}
ARCHITECTURES: dict[str, dict[str, tuple[str, ...]]] = {
    "bert": _BERT_LIKE,
    "roberta": _BERT_LIKE,
    "xlm-roberta": _BERT_LIKE,
    "electra": _BERT_LIKE,
    "deberta-v2": {
        **_BERT_LIKE,
        "q": ("attention.self.query_proj",),
        "k": ("attention.self.key_proj",),
        "v": ("attention.self.value_proj",),
    },
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
}

# Last name components that usually mean a role, for architectures not in the map.
_NAME_HINTS = {
    "q": ("query", "q_proj", "q_lin", "wq", "query_proj", "q"),
    "k": ("key", "k_proj", "k_lin", "wk", "key_proj", "k"),
    "v": ("value", "v_proj", "v_lin", "wv", "value_proj", "v"),
    "o": ("o_proj", "out_lin", "out_proj", "wo", "attention.output.dense", "attn.dense", "o"),  # "o": MPNet
    "ffn_in": ("intermediate.dense", "up_proj", "gate_proj", "fc1", "lin1", "w1", "w3", "dense_h_to_4h"),
    "ffn_out": ("output.dense", "down_proj", "fc2", "lin2", "w2", "dense_4h_to_h"),
}


class SpaceError(ValueError):
    """The model offers no place for the requested candidates."""


@dataclass(frozen=True)
class ModelMap:
    """Where the blocks are and which Linear plays which role inside a block."""

    layers_path: str
    roles: dict[str, tuple[str, ...]]
    num_layers: int
    linears: tuple[str, ...] = ()  # every Linear found in a block, for error messages


def find_blocks(model: nn.Module, layers_path: str | None = None) -> tuple[str, nn.ModuleList]:
    """The ModuleList of repeated transformer blocks: given, or the largest list of same-class blocks."""
    if layers_path:
        try:
            blocks = model.get_submodule(layers_path)
        except AttributeError as err:
            raise SpaceError(f"--layers-path {layers_path!r} does not name a module of this model") from err
        if not isinstance(blocks, nn.ModuleList):
            raise SpaceError(f"--layers-path {layers_path!r} is a {type(blocks).__name__}, not a ModuleList")
        return layers_path, blocks
    best = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        if not any(isinstance(m, nn.Linear) for m in module[0].modules()):
            continue
        if best is None or len(module) > len(best[1]):
            best = (name, module)
    if best is None:
        raise SpaceError(
            "found no repeated transformer blocks (a ModuleList of identical blocks holding nn.Linear layers) "
            f"in {type(model).__name__}; projections of other types (such as GPT-2's Conv1D) are not supported. "
            "If the blocks hold Linear layers, name their list with --layers-path, e.g. 'model.layers'."
        )
    return best


def _linear_names(block: nn.Module) -> list[str]:
    return [n for n, m in block.named_modules() if isinstance(m, nn.Linear) and not isinstance(m, WRAPPERS)]


def _discover_roles(linears: list[str]) -> dict[str, tuple[str, ...]]:
    roles: dict[str, tuple[str, ...]] = {}
    taken: set[str] = set()
    # Specific patterns first ("attention.output.dense" before "output.dense").
    for role in ("q", "k", "v", "o", "ffn_in", "ffn_out"):
        found = []
        for hint in _NAME_HINTS[role]:
            for name in linears:
                if name in taken:
                    continue
                if name == hint or name.endswith("." + hint):
                    found.append(name)
        if found:
            roles[role] = tuple(dict.fromkeys(found))
            taken.update(found)
    return roles


def map_model(
    model: nn.Module, layers_path: str | None = None, role_overrides: dict[str, tuple[str, ...]] | None = None
) -> ModelMap:
    """Find the blocks and the role of each projection; raise SpaceError saying what was found."""
    path, blocks = find_blocks(model, layers_path)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    linears = _linear_names(blocks[0])
    roles = dict(ARCHITECTURES.get(model_type) or _discover_roles(linears))
    roles.update(role_overrides or {})
    missing = {r: names for r, names in roles.items() if any(n not in linears for n in names)}
    if missing:
        raise SpaceError(
            f"in the blocks at {path!r} these role targets are not Linear layers: {missing}. "
            f"Linear layers found in a block: {linears}. Set them with --target ROLE=NAME[+NAME]."
        )
    return ModelMap(layers_path=path, roles=roles, num_layers=len(blocks), linears=tuple(linears))
