"""Which candidates exist for a model: the architecture map, and attaching / removing candidates.

A model is described by its repeated blocks (a ``ModuleList``) and, inside one block, the Linear layers
that play the roles q, k, v, o (attention) and ffn_in, ffn_out (feed-forward). Known families are looked
up by ``config.model_type``; others are discovered from module names; both can be overridden.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from torch import nn

from prunepeft.method.modules import WRAPPERS, LoraLinear, ParallelAdapter, SerialAdapter
from prunepeft.method.modules.adapter import ACTIVATIONS

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
    "o": ("o_proj", "out_lin", "out_proj", "wo", "attention.output.dense", "attn.dense"),
    "ffn_in": ("intermediate.dense", "up_proj", "gate_proj", "fc1", "lin1", "w1", "w3", "dense_h_to_4h"),
    "ffn_out": ("output.dense", "down_proj", "fc2", "lin2", "w2", "dense_4h_to_h"),
}


class SpaceError(ValueError):
    """The model offers no place for the requested candidates."""


@dataclass(frozen=True)
class CandidateSpec:
    """One prunable unit: a module kind on one or more Linear layers of one block."""

    name: str  # e.g. "L3.lora_qv"
    kind: str  # the unit type, e.g. "lora_qv", "serial_ffn" (partitions are made per kind)
    layer: int
    module: str  # "lora" | "serial_adapter" | "parallel_adapter"
    targets: tuple[str, ...]  # dotted paths of the wrapped Linear layers, from the model root
    size: int  # LoRA rank or adapter bottleneck width
    alpha: float = 0.0  # LoRA only
    dropout: float = 0.0  # LoRA only
    activation: str = "relu"  # adapters only

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CandidateSpec:
        data = dict(data)
        data["targets"] = tuple(data["targets"])
        return cls(**data)


@dataclass
class Candidate:
    """A candidate attached to a live model."""

    spec: CandidateSpec
    wrappers: list[nn.Module]

    def parameters(self) -> list[nn.Parameter]:
        """The candidate's own trainable tensors (not the wrapped base layer's)."""
        return [p for w in self.wrappers for n, p in w.named_parameters() if not _is_base_param(n)]

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _is_base_param(name: str) -> bool:
    return name.startswith("base.")


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


# Unit types of each search space: (kind, module, roles it wraps). Order = wrapping order on a shared
# Linear (LoRA innermost, serial adapters outermost).
SPACES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "paper": (("lora_qv", "lora", ("q", "v")), ("serial_ffn", "serial_adapter", ("ffn_out",))),
    "attention": (("lora_qkvo", "lora", ("q", "k", "v", "o")), ("serial_ffn", "serial_adapter", ("ffn_out",))),
    "extended": (
        ("lora_q", "lora", ("q",)),
        ("lora_k", "lora", ("k",)),
        ("lora_v", "lora", ("v",)),
        ("lora_o", "lora", ("o",)),
        ("lora_ffn_in", "lora", ("ffn_in",)),
        ("lora_ffn_out", "lora", ("ffn_out",)),
        ("parallel_ffn", "parallel_adapter", ("ffn_out",)),
        ("serial_attn", "serial_adapter", ("o",)),
        ("serial_ffn", "serial_adapter", ("ffn_out",)),
    ),
}


KEEP_SHARE = 0.5  # unit sizes from the budget: every candidate gets an equal share of twice the budget
PAPER_RANK, PAPER_WIDTH = 32, 64  # sizes without a budget to derive them from (the supernet baseline)


@dataclass(frozen=True)
class SpaceSettings:
    space: str = "attention"
    lora_rank: int | None = None  # None: sized from the budget (``unit_sizes``)
    lora_alpha: float | None = None  # None: twice the rank
    lora_dropout: float = 0.0
    bottleneck_size: int | None = None  # adapter width; None: sized from the budget
    adapter_activation: str = "relu"

    def __post_init__(self):
        if self.space not in SPACES:
            raise SpaceError(f"unknown search space {self.space!r}; choose from {sorted(SPACES)}")
        if any(size is not None and size < 1 for size in (self.lora_rank, self.bottleneck_size)):
            raise SpaceError(
                f"--lora-rank and --bottleneck-size must be at least 1 (got {self.lora_rank}, {self.bottleneck_size})."
            )
        if self.adapter_activation not in ACTIVATIONS:
            raise SpaceError(f"--adapter-activation {self.adapter_activation!r}: choose from {sorted(ACTIVATIONS)}.")
        if not 0 <= self.lora_dropout < 1:
            raise SpaceError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}.")


def _usable(model_map: ModelMap, settings: SpaceSettings) -> list[tuple[str, str, tuple[str, ...]]]:
    if settings.space not in SPACES:
        raise SpaceError(f"unknown search space {settings.space!r}; choose from {sorted(SPACES)}")
    usable = [u for u in SPACES[settings.space] if all(r in model_map.roles for r in u[2])]
    if not usable:
        raise SpaceError(
            f"no candidate of the {settings.space!r} space can be placed in the blocks at "
            f"{model_map.layers_path!r}: roles found {model_map.roles}, Linear layers in a block "
            f"{list(model_map.linears)}. Set the missing roles with --target ROLE=NAME "
            "(roles: q, k, v, o, ffn_in, ffn_out)."
        )
    return usable


def unit_sizes(model: nn.Module, model_map: ModelMap, settings: SpaceSettings, budget_params: int) -> dict[str, int]:
    """The rank or width of each kind of candidate: the one given, or else the largest size at which a candidate
    holds at most an equal share of twice the budget (``KEEP_SHARE``), so that any half of the supernet fits the
    budget and, on average, half of each layer's candidates are kept: sizes follow the budget and the model, not
    a task. (Rounded down, not to the nearest: rounded up, half of the candidates can pass the budget by a few
    parameters, and the budget then keeps one candidate fewer.)"""
    usable = _usable(model_map, settings)
    share = budget_params / (KEEP_SHARE * len(usable) * model_map.num_layers)
    sizes = {}
    for kind, module, roles in usable:
        given = settings.lora_rank if module == "lora" else settings.bottleneck_size
        if given is not None:
            sizes[kind] = given
            continue
        one = CandidateSpec("probe", kind, 0, module, _targets(model_map, 0, roles), size=1)
        two = dataclasses.replace(one, size=2)
        per_size = spec_params(model, two) - spec_params(model, one)  # parameters per unit of rank or width
        fixed = spec_params(model, one) - per_size  # adapter biases of the output
        sizes[kind] = max(1, math.floor((share - fixed) / per_size))
    return sizes


def _targets(model_map: ModelMap, layer: int, roles: tuple[str, ...]) -> tuple[str, ...]:
    prefix = f"{model_map.layers_path}.{layer}."
    return tuple(prefix + name for r in roles for name in model_map.roles[r])


def build_space(
    model_map: ModelMap, settings: SpaceSettings, sizes: dict[str, int] | None = None
) -> list[CandidateSpec]:
    """Every candidate of the search space, in canonical (layer, kind) order; ``sizes`` (kind -> rank or
    width, from ``unit_sizes``) fills the sizes the settings leave open (else the paper's 32 and 64)."""
    specs = []
    usable = _usable(model_map, settings)
    for layer in range(model_map.num_layers):
        for kind, module, roles in usable:
            is_lora = module == "lora"
            given = settings.lora_rank if is_lora else settings.bottleneck_size
            size = given or (sizes or {}).get(kind) or (PAPER_RANK if is_lora else PAPER_WIDTH)
            alpha = 0.0 if not is_lora else 2.0 * size if settings.lora_alpha is None else settings.lora_alpha
            specs.append(
                CandidateSpec(
                    name=f"L{layer}.{kind}",
                    kind=kind,
                    layer=layer,
                    module=module,
                    targets=_targets(model_map, layer, roles),
                    size=size,
                    alpha=alpha,
                    dropout=settings.lora_dropout if is_lora else 0.0,
                    activation="" if is_lora else settings.adapter_activation,
                )
            )
    return specs


def spec_params(model: nn.Module, spec: CandidateSpec) -> int:
    """The trainable parameters the candidate will have once attached (counted without attaching it)."""
    total = 0
    for target in spec.targets:
        linear = model.get_submodule(target)
        while isinstance(linear, WRAPPERS):
            linear = linear.base
        d_in, d_out, size = linear.in_features, linear.out_features, spec.size
        if spec.module == "lora":
            total += size * (d_in + d_out)
        else:  # bottleneck: down (with bias) from the output (serial) or the input (parallel), up (with bias)
            d_down = d_out if spec.module == "serial_adapter" else d_in
            total += d_down * size + size + size * d_out + d_out
    return total


def _make_wrapper(spec: CandidateSpec, base: nn.Module) -> nn.Module:
    if spec.module == "lora":
        return LoraLinear(base, rank=spec.size, alpha=spec.alpha, dropout=spec.dropout)
    if spec.module == "serial_adapter":
        return SerialAdapter(base, spec.size, spec.activation)
    if spec.module == "parallel_adapter":
        return ParallelAdapter(base, spec.size, spec.activation)
    raise SpaceError(f"unknown candidate module {spec.module!r}")


def attach(model: nn.Module, spec: CandidateSpec) -> Candidate:
    """Wrap each target Linear (outermost wrapper so far) with a fresh module of the spec's kind."""
    wrappers = []
    for target in spec.targets:
        parent_name, _, attr = target.rpartition(".")
        parent = model.get_submodule(parent_name)
        wrapper = _make_wrapper(spec, getattr(parent, attr))
        setattr(parent, attr, wrapper)
        wrappers.append(wrapper)
    return Candidate(spec, wrappers)


def detach(model: nn.Module, candidate: Candidate) -> None:
    """Unlink the candidate's wrappers, restoring what they wrapped; their parameters leave the model."""
    for target, wrapper in zip(candidate.spec.targets, candidate.wrappers, strict=True):
        parent_name, _, attr = target.rpartition(".")
        parent = model.get_submodule(parent_name)
        holder, current = parent, getattr(parent, attr)
        if current is wrapper:
            setattr(parent, attr, wrapper.base)
            continue
        while isinstance(current, WRAPPERS):  # the wrapper sits further down a chain
            if current.base is wrapper:
                current.base = wrapper.base
                break
            holder, current = current, current.base
        else:
            raise SpaceError(f"candidate {candidate.spec.name} is not attached at {target} (held by {holder})")


def attach_all(model: nn.Module, specs: list[CandidateSpec]) -> list[Candidate]:
    """Attach in canonical order, so that parameter names are the same every time."""
    order = {kind: i for space in SPACES.values() for i, (kind, _, _) in enumerate(space)}
    ordered = sorted(specs, key=lambda s: (s.layer, order.get(s.kind, 99), s.name))
    by_name = {s.name: attach(model, s) for s in ordered}
    return [by_name[s.name] for s in specs]
