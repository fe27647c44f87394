import math

import pytest
import torch

from otdata.ot._exp import exp, exp_, exp_floor


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exp_equals_torch_above_the_floor_and_is_negligible_below(dtype):
    tiny = torch.finfo(dtype).tiny
    assert math.exp(exp_floor(dtype)) >= tiny and math.exp(exp_floor(dtype) - 1) < tiny
    T = torch.linspace(-2000.0, 20.0, 100_001, dtype=dtype)
    ref = torch.exp(T)
    out = exp_(T.clone())
    above = T >= exp_floor(dtype)
    assert torch.equal(out[above], ref[above])
    assert bool((out[~above] > 0).all()) and float(out[~above].max()) <= 1.5 * tiny
    assert torch.equal(exp(T), out)


def test_exp_keeps_gradients():
    T = torch.tensor([-3.0, 0.5, -500.0], requires_grad=True)
    exp(T).sum().backward()
    assert torch.allclose(T.grad[:2], torch.exp(T.detach()[:2])) and float(T.grad[2]) == 0.0
