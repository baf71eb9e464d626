import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from prunepeft.method.modules import LoraLinear, ParallelAdapter, SerialAdapter


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.v = nn.Linear(16, 16)

    def forward(self, x):
        return self.q(x) + self.v(x)


@pytest.mark.parametrize("rank,alpha", [(4, 8.0), (8, 8.0)])
def test_lora_equals_peft_lora(rank, alpha):
    torch.manual_seed(0)
    toy = Toy()
    x = torch.randn(3, 5, 16)
    ours = LoraLinear(toy.q, rank=rank, alpha=alpha)
    nn.init.normal_(ours.lora_B.weight)  # B is zero at init: make the update visible
    ref = get_peft_model(Toy().requires_grad_(False), LoraConfig(r=rank, lora_alpha=alpha, target_modules=["q"]))
    ref.base_model.model.q.base_layer.load_state_dict(toy.q.state_dict())
    ref.base_model.model.v.load_state_dict(toy.v.state_dict())
    ref.base_model.model.q.lora_A["default"].weight.data.copy_(ours.lora_A.weight)
    ref.base_model.model.q.lora_B["default"].weight.data.copy_(ours.lora_B.weight)
    expected = ref(x) - toy.v(x)
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        ours.merged_weight(), toy.q.weight + ours.lora_B.weight @ ours.lora_A.weight * alpha / rank
    )


def test_lora_starts_as_identity_and_has_peft_init():
    base = nn.Linear(10, 6)
    lora = LoraLinear(base, rank=2, alpha=4)
    x = torch.randn(4, 10)
    torch.testing.assert_close(lora(x), base(x))
    assert lora.scaling == 2.0
    assert torch.all(lora.lora_B.weight == 0) and lora.lora_A.weight.abs().sum() > 0


def test_serial_and_parallel_adapter_formulas():
    torch.manual_seed(0)
    base = nn.Linear(8, 12)
    serial, parallel = SerialAdapter(base, 4), ParallelAdapter(base, 3, activation="gelu")
    x = torch.randn(2, 8)
    torch.testing.assert_close(serial(x), base(x))  # identity at init
    for ad in (serial, parallel):
        nn.init.normal_(ad.adapter_up.weight)
    h = base(x)
    torch.testing.assert_close(serial(x), h + serial.adapter_up(torch.relu(serial.adapter_down(h))))
    gelu = nn.functional.gelu
    torch.testing.assert_close(parallel(x), h + parallel.adapter_up(gelu(parallel.adapter_down(x))))
    assert parallel.adapter_down.in_features == 8 and serial.adapter_down.in_features == 12


def test_observer_sees_branch_output():
    base = nn.Linear(4, 4)
    ad = SerialAdapter(base, 2)
    nn.init.normal_(ad.adapter_up.weight)
    seen = []
    ad.observer = seen.append
    x = torch.randn(3, 4)
    out = ad(x)
    torch.testing.assert_close(seen[0], out - base(x))


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation"):
        SerialAdapter(nn.Linear(4, 4), 2, activation="swishy")
