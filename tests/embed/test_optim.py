import itertools
import math

import pytest
import torch
from contrastx.embed.optim import LARS, warmup_cosine, warmup_cosine_scheduler


def test_lars_step_matches_formula():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    opt = LARS(lin.parameters(), lr=0.5, weight_decay=0.1, momentum=0.9, trust_coefficient=0.01)
    lin(torch.randn(4, 3, generator=torch.Generator().manual_seed(1))).square().sum().backward()
    gw, gb = lin.weight.grad.clone(), lin.bias.grad.clone()
    opt.step()
    u = gw + 0.1 * w0
    q = 0.01 * w0.norm() / u.norm()
    torch.testing.assert_close(lin.weight.detach(), w0 - 0.5 * q * u)
    # bias: no weight decay, no trust ratio
    torch.testing.assert_close(lin.bias.detach(), b0 - 0.5 * gb)


def test_lars_momentum_and_state_roundtrip():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    opt = LARS(lin.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(2)
    for _ in range(2):
        opt.zero_grad()
        lin(torch.randn(4, 3, generator=gen)).sum().backward()
        opt.step()
    state = opt.state_dict()
    opt2 = LARS(lin.parameters(), lr=0.1)
    opt2.load_state_dict(state)
    assert all("momentum_buffer" in s for s in opt2.state.values())
    with pytest.raises(ValueError, match="invalid LARS"):
        LARS(lin.parameters(), lr=-1)


def test_warmup_cosine_shape():
    f = [warmup_cosine(s, 10, 50) for s in range(50)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert warmup_cosine(50, 10, 50) == pytest.approx(1e-3)
    assert warmup_cosine(30, 10, 50) == pytest.approx(
        1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi / 2))
    )
    lin = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=2.0)
    sched = warmup_cosine_scheduler(opt, 2, 4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:2] == pytest.approx([1.0, 2.0])
    assert lrs[3] < lrs[2] == pytest.approx(2.0)
