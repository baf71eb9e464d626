"""The search space: which candidates a model gets, their sizes, and attaching / removing them.

A LoRA *location* (a layer's LoRA on a set of projections) holds its rank as near-equal *slices* (``slice_ranks``),
each a candidate of its own, so that pruning decides each location's rank, not only whether it is kept; what
survives at a location merges into one LoRA of the summed rank (``merge_slices``). Two LoRA slices on the same
weights are exactly one LoRA of their summed rank (same scaling alpha / rank); two chained adapters are not one
adapter of the summed width, so an adapter stays one candidate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from torch import nn

from prunepeft.method.model_map import (  # noqa: F401  (the map is imported with the space it is used for)
    ROLES,
    ModelMap,
    SpaceError,
    find_blocks,
    map_model,
)
from prunepeft.method.modules import WRAPPERS, LoraLinear, ParallelAdapter, SerialAdapter, SlicedLoraLinear
from prunepeft.method.modules.adapter import ACTIVATIONS


@dataclass(frozen=True)
class CandidateSpec:
    """One prunable unit: a module kind on one or more Linear layers of one block."""

    name: str  # e.g. "L3.lora_qv", or "L3.lora_qkvo.s1" for a slice of the location "L3.lora_qkvo"
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


# Unit types of each search space: (kind, module, roles it wraps). Order = wrapping order on a shared
# Linear (LoRA innermost, serial adapters outermost).
SPACES: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    # LoRA only, so that every result is a stock peft LoRA: one location on the attention projections and one on
    # the feed-forward projections of each layer
    "lora": (("lora_qkvo", "lora", ("q", "k", "v", "o")), ("lora_ffn", "lora", ("ffn_in", "ffn_out"))),
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


KEEP_SHARE = 0.5  # unit sizes from the budget: every location gets an equal share of twice the budget
LORA_SLICES = 4  # a LoRA location's rank is split into this many slices (ranks differing by at most one)
PAPER_RANK, PAPER_WIDTH = 32, 64  # sizes without a budget to derive them from (the supernet baseline)


@dataclass(frozen=True)
class SpaceSettings:
    space: str = "lora"
    lora_rank: int | None = None  # None: sized from the budget (``unit_sizes``)
    lora_alpha: float | None = None  # None: twice the rank
    lora_dropout: float = 0.0
    bottleneck_size: int | None = None  # adapter width; None: sized from the budget
    adapter_activation: str = "relu"
    lora_slices: int = LORA_SLICES  # slices per LoRA location (1: whole units, as in the paper)

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
        if self.lora_slices < 1:
            raise SpaceError(f"--lora-slices must be at least 1 (1: whole LoRA units), got {self.lora_slices}.")


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


def slice_ranks(rank: int, slices: int) -> list[int]:
    """A LoRA location of ``rank`` as min(``slices``, ``rank``) slices whose ranks sum to ``rank`` and differ by at
    most one (the larger first): the whole rank is prunable, none of it is lost to rounding."""
    count = min(slices, rank)
    return [rank // count + (1 if i < rank % count else 0) for i in range(count)]


def build_space(
    model_map: ModelMap, settings: SpaceSettings, sizes: dict[str, int] | None = None
) -> list[CandidateSpec]:
    """Every candidate of the search space, in canonical (layer, kind, slice) order; ``sizes`` (kind -> rank or
    width of a location, from ``unit_sizes``) fills the sizes the settings leave open (else the paper's 32 and
    64). A LoRA location becomes ``slice_ranks`` slices named ``L{layer}.{kind}.s{i}`` (one slice keeps the
    location's name)."""
    specs = []
    usable = _usable(model_map, settings)
    for layer in range(model_map.num_layers):
        for kind, module, roles in usable:
            is_lora = module == "lora"
            given = settings.lora_rank if is_lora else settings.bottleneck_size
            size = given or (sizes or {}).get(kind) or (PAPER_RANK if is_lora else PAPER_WIDTH)
            parts = slice_ranks(size, settings.lora_slices) if is_lora else [size]
            for i, part in enumerate(parts):
                scaling = 2.0 if settings.lora_alpha is None else settings.lora_alpha / size
                specs.append(
                    CandidateSpec(
                        name=f"L{layer}.{kind}" + (f".s{i}" if len(parts) > 1 else ""),
                        kind=kind,
                        layer=layer,
                        module=module,
                        targets=_targets(model_map, layer, roles),
                        size=part,
                        alpha=scaling * part if is_lora else 0.0,  # every slice scales as the location does
                        dropout=settings.lora_dropout if is_lora else 0.0,
                        activation="" if is_lora else settings.adapter_activation,
                    )
                )
    return specs


def location(spec: CandidateSpec) -> str:
    """The location a candidate belongs to: ``L{layer}.{kind}`` (its own name unless it is a slice)."""
    return f"L{spec.layer}.{spec.kind}"


def merge_slices(specs: list[CandidateSpec]) -> list[CandidateSpec]:
    """The kept slices of each LoRA location as one LoRA of their summed rank (same scaling, so the same function
    space), named after the location; other candidates unchanged. Order: first appearance of each location."""
    merged: dict[str, CandidateSpec] = {}
    for spec in specs:
        key = location(spec) if spec.module == "lora" else spec.name
        if key not in merged:
            merged[key] = dataclasses.replace(spec, name=key)
            continue
        first = merged[key]
        if (first.targets, first.dropout) != (spec.targets, spec.dropout) or not math.isclose(
            first.alpha / first.size, spec.alpha / spec.size
        ):
            raise SpaceError(f"LoRA slices of {key} differ in targets, dropout or scaling; they cannot be merged.")
        merged[key] = dataclasses.replace(first, size=first.size + spec.size, alpha=first.alpha + spec.alpha)
    return list(merged.values())


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


def is_slice(spec: CandidateSpec) -> bool:
    """A LoRA slice: one of several candidates sharing a location (``L3.lora_qkvo.s1``)."""
    return spec.module == "lora" and spec.name != location(spec)


def attach(model: nn.Module, spec: CandidateSpec) -> Candidate:
    """Wrap each target Linear (outermost wrapper so far) with a fresh module of the spec's kind. A LoRA slice
    joins its location's ``SlicedLoraLinear`` on each target (made at the first slice), so that a location's
    slices cost one LoRA pass, not one each."""
    wrappers = []
    for target in spec.targets:
        parent_name, _, attr = target.rpartition(".")
        parent = model.get_submodule(parent_name)
        if not is_slice(spec):
            wrapper = _make_wrapper(spec, getattr(parent, attr))
            setattr(parent, attr, wrapper)
            wrappers.append(wrapper)
            continue
        holder = _sliced_holder(getattr(parent, attr), location(spec))
        if holder is None:
            holder = SlicedLoraLinear(getattr(parent, attr), spec.alpha / spec.size, spec.dropout, location(spec))
            setattr(parent, attr, holder)
        elif not math.isclose(holder.scaling, spec.alpha / spec.size) or holder.dropout_p != spec.dropout:
            raise SpaceError(f"LoRA slice {spec.name} differs in scaling or dropout from its location's slices.")
        wrappers.append(holder.add_slice(spec.name.rpartition(".")[2], spec.size))
    return Candidate(spec, wrappers)


def _sliced_holder(module: nn.Module, where: str) -> SlicedLoraLinear | None:
    """The ``SlicedLoraLinear`` of location ``where`` in a chain of wrappers, if there is one."""
    while isinstance(module, WRAPPERS):
        if isinstance(module, SlicedLoraLinear) and module.location == where:
            return module
        module = module.base
    return None


def detach(model: nn.Module, candidate: Candidate) -> None:
    """Unlink the candidate's wrappers, restoring what they wrapped; their parameters leave the model. A slice
    leaves its location's ``SlicedLoraLinear``, which is unlinked with its last slice."""
    for target, wrapper in zip(candidate.spec.targets, candidate.wrappers, strict=True):
        parent_name, _, attr = target.rpartition(".")
        parent = model.get_submodule(parent_name)
        if is_slice(candidate.spec):
            holder = _sliced_holder(getattr(parent, attr), location(candidate.spec))
            if holder is None or wrapper not in holder.slices.values():
                raise SpaceError(f"candidate {candidate.spec.name} is not attached at {target}")
            holder.remove_slice(wrapper)
            if holder.slices:
                continue
            wrapper = holder
        _unlink(parent, attr, wrapper, candidate.spec.name, target)


def _unlink(parent: nn.Module, attr: str, wrapper: nn.Module, name: str, target: str) -> None:
    holder, current = parent, getattr(parent, attr)
    if current is wrapper:
        setattr(parent, attr, wrapper.base)
        return
    while isinstance(current, WRAPPERS):  # the wrapper sits further down a chain
        if current.base is wrapper:
            current.base = wrapper.base
            return
        holder, current = current, current.base
    raise SpaceError(f"candidate {name} is not attached at {target} (held by {holder})")


def attach_all(model: nn.Module, specs: list[CandidateSpec]) -> list[Candidate]:
    """Attach in canonical order, so that parameter names are the same every time."""
    order = {kind: i for space in SPACES.values() for i, (kind, _, _) in enumerate(space)}
    ordered = sorted(specs, key=lambda s: (s.layer, order.get(s.kind, 99), s.name))
    by_name = {s.name: attach(model, s) for s in ordered}
    return [by_name[s.name] for s in specs]
