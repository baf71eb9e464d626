"""Candidate module kinds: each wraps one frozen ``nn.Linear`` and adds trainable parameters."""

from prunepeft.method.modules.adapter import ParallelAdapter, SerialAdapter
from prunepeft.method.modules.lora import LoraLinear, LoraSlice, SlicedLoraLinear

WRAPPERS = (LoraLinear, SlicedLoraLinear, SerialAdapter, ParallelAdapter)

__all__ = ["LoraLinear", "LoraSlice", "ParallelAdapter", "SerialAdapter", "SlicedLoraLinear", "WRAPPERS"]
