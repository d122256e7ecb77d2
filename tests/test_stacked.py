"""StackedBDRNN against the tutorial BDRNN: same numbers, same gradients, same training."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from signal_noise.lstm_kernel import lstm_layer
from signal_noise.model import BDRNN, make_model
from signal_noise.stacked import StackedBDRNN

HIDDEN = (7, 12, 5)  # unequal on purpose: members 0 and 2 are padded to 12


def _members(hidden, layers, dtype=torch.float32, seed0=0):
    return [make_model(h, layers, seed0 + k)[0].to(dtype) for k, h in enumerate(hidden)]


def _stack_grads(stack: StackedBDRNN, k: int) -> dict[str, torch.Tensor]:
    """Member k's gradients in the tutorial's layout, via a stack that holds the gradients as weights."""
    holder = StackedBDRNN(stack.hidden_sizes, stack.num_layers, width=stack.hmax).to(stack.fc_w.dtype)
    with torch.no_grad():
        for p, q in zip(stack.parameters(), holder.parameters()):
            q.copy_(p.grad)
    return holder.member_state_dict(k)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    """Equal to rtol relative to the tensor's scale (a tiny gradient entry need not be relatively exact)."""
    scale = b.abs().max().clamp_min(torch.finfo(b.dtype).tiny)
    return bool(((a - b).abs() <= rtol * scale).all())


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_logits_and_gradients_match_bdrnn(layers, dtype, rtol):
    torch.manual_seed(layers)
    models = _members(HIDDEN, layers, dtype)
    stack = StackedBDRNN.from_members(models).to(dtype)
    x = torch.rand(len(HIDDEN), 3, 28, 28, dtype=dtype)
    w_out = torch.randn(len(HIDDEN), 3, 10, dtype=dtype)  # a loss that weighs every logit differently

    logits = stack(x)
    (logits * w_out).sum().backward()
    assert logits.shape == (len(HIDDEN), 3, 10)
    for k, m in enumerate(models):
        ref = m(x[k])
        (ref * w_out[k]).sum().backward()
        torch.testing.assert_close(logits[k], ref, rtol=rtol, atol=rtol * ref.abs().max().item())
        grads = _stack_grads(stack, k)
        for name, p in m.named_parameters():
            assert _close(grads[name], p.grad, rtol), (k, name, (grads[name] - p.grad).abs().max())


def test_explicit_width_pads_every_member():
    models = _members(HIDDEN, 2, torch.float64)
    stack = StackedBDRNN(HIDDEN, 2, width=16).load_members(models).double()
    x = torch.rand(len(HIDDEN), 2, 28, 28, dtype=torch.float64)
    logits = stack(x)
    logits.sum().backward()
    for k, m in enumerate(models):
        torch.testing.assert_close(logits[k], m(x[k]), rtol=1e-10, atol=1e-12)
    for name, mask in stack.padding_mask().items():
        assert (dict(stack.named_parameters())[name].grad[mask] == 0).all(), name
    with pytest.raises(ValueError, match="narrower"):
        StackedBDRNN(HIDDEN, 2, width=8)


def test_shared_batch_broadcasts_to_every_member():
    models = _members(HIDDEN, 2)
    stack = StackedBDRNN.from_members(models)
    x = torch.rand(5, 28, 28)
    with torch.no_grad():
        logits = stack(x)
        for k, m in enumerate(models):
            torch.testing.assert_close(logits[k], m(x), rtol=1e-5, atol=1e-6)


def test_member_state_dict_round_trip():
    models = _members(HIDDEN, 3)
    stack = StackedBDRNN.from_members(models)
    x = torch.rand(4, 28, 28)
    for k, m in enumerate(models):
        sd = stack.member_state_dict(k)
        assert list(sd) == list(m.state_dict())
        assert all(sd[n].shape == t.shape and sd[n].device.type == "cpu" for n, t in m.state_dict().items())
        assert all(torch.equal(sd[n], t) for n, t in m.state_dict().items())  # pure copies, no arithmetic
        fresh = BDRNN(hidden_size=HIDDEN[k], num_layers=3)
        fresh.load_state_dict(sd)
        with torch.no_grad():
            torch.testing.assert_close(fresh(x), stack(x)[k], rtol=1e-5, atol=1e-6)


def test_load_members_rejects_mismatches():
    stack = StackedBDRNN(HIDDEN, 2)
    with pytest.raises(ValueError, match="expected 3 models"):
        stack.load_members(_members(HIDDEN[:2], 2))
    with pytest.raises(ValueError, match="member 1"):
        stack.load_members(_members((7, 13, 5), 2))
    with pytest.raises(ValueError, match="num_layers=3"):
        stack.load_members(_members(HIDDEN, 3))
    with pytest.raises(ValueError, match="x must be"):
        stack(torch.rand(2, 4, 28, 28))


def test_default_init_is_zero_on_padding():
    stack = StackedBDRNN(HIDDEN, 2)
    masks = stack.padding_mask()
    assert all(masks[name].any() for name in masks if name != "fc_b")  # fc_b has nothing to pad
    for name, p in stack.named_parameters():
        assert (p[masks[name]] == 0).all(), name
        assert (p[~masks[name]] != 0).float().mean() > 0.99, name


def _structured_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class c is drawn as a bright bar on rows 2c..2c+3, under uniform noise."""
    y = torch.randint(0, 10, (n,), generator=generator)
    x = 0.3 * torch.rand(n, 28, 28, generator=generator)
    rows = 2 * y[:, None] + torch.arange(4)
    x[torch.arange(n)[:, None], rows] += 0.7
    return x, y


def test_training_matches_separate_runs_and_padding_stays_zero():
    hidden, layers, batch, steps = (128, 48, 16), 2, 16, 20
    models = _members(hidden, layers, seed0=10)
    stack = StackedBDRNN.from_members(models)
    stack_opt = torch.optim.Adam(stack.parameters(), lr=0.003)
    opts = [torch.optim.Adam(m.parameters(), lr=0.003) for m in models]
    loss_fn = nn.CrossEntropyLoss()
    gens = [torch.Generator().manual_seed(100 + k) for k in range(len(hidden))]
    masks = stack.padding_mask()

    for step in range(steps):
        batches = [_structured_batch(batch, g) for g in gens]  # each member its own batches
        x = torch.stack([b[0] for b in batches])
        y = torch.stack([b[1] for b in batches])
        stack_opt.zero_grad()
        logits = stack(x)
        member_losses = torch.stack([loss_fn(logits[k], y[k]) for k in range(len(hidden))])
        member_losses.sum().backward()
        for name, p in stack.named_parameters():  # the claim the engine rests on, checked not assumed
            assert (p.grad[masks[name]] == 0).all(), (step, name)
        stack_opt.step()
        for k, (m, opt) in enumerate(zip(models, opts)):
            opt.zero_grad()
            loss = loss_fn(m(x[k]), y[k])
            loss.backward()
            opt.step()
            assert abs(loss.item() - member_losses[k].item()) <= 1e-4 * loss.item(), (step, k)

    for name, p in stack.named_parameters():
        assert (p[masks[name]] == 0.0).all(), name
    x_test, _ = _structured_batch(2000, torch.Generator().manual_seed(7))
    with torch.no_grad():
        pred_stack = stack(x_test).argmax(-1)
        for k, m in enumerate(models):
            agree = (pred_stack[k] == m(x_test).argmax(-1)).float().mean().item()
            assert agree >= 0.999, (k, agree)


def _layer_inputs(dtype=torch.float64):
    """A tiny two-group layer: cells 0-1 fed by two terms (one from an expanded input), cell 2 by one."""
    torch.manual_seed(0)
    n, steps, batch, h = 3, 4, 2, 2

    def leaf(*shape):
        return torch.randn(*shape, dtype=dtype).requires_grad_()

    w_hh, bias = leaf(n, h, 4 * h), leaf(n, 4 * h)
    inp_a, w_a = leaf(1, steps * batch, 3), leaf(2, 3, 4 * h)
    inp_b, w_b = leaf(2, steps * batch, 2), leaf(2, 2, 4 * h)
    inp_c, w_c = leaf(1, steps * batch, 3), leaf(1, 3, 4 * h)
    return steps, (w_hh, bias, inp_a, w_a, inp_b, w_b, inp_c, w_c)


@pytest.mark.parametrize("last_only", [False, True])
def test_lstm_layer_gradcheck(last_only):
    steps, tensors = _layer_inputs()

    def fn(w_hh, bias, inp_a, w_a, inp_b, w_b, inp_c, w_c):
        terms = [(0, 2, inp_a.expand(2, -1, -1), w_a), (0, 2, inp_b, w_b), (2, 1, inp_c, w_c)]
        return lstm_layer(w_hh, bias, steps, terms, out_split=(2, 1), last_only=last_only)

    assert torch.autograd.gradcheck(fn, tensors)


def test_lstm_layer_matches_nn_lstm_cell_by_cell():
    """One cell of the Function against nn.LSTM with the gates mapped (i, f, g, o) -> (o, i, f, g)."""
    torch.manual_seed(1)
    steps, batch, n_in, h = 5, 3, 4, 6
    ref = nn.LSTM(n_in, h, batch_first=True).double()
    x = torch.randn(batch, steps, n_in, dtype=torch.float64)
    order = torch.cat([torch.arange(q * h, (q + 1) * h) for q in (3, 0, 1, 2)])
    w_ih = ref.weight_ih_l0[order].T.unsqueeze(0)
    w_hh = ref.weight_hh_l0[order].T.unsqueeze(0)
    bias = (ref.bias_ih_l0 + ref.bias_hh_l0)[order].unsqueeze(0)
    inp = x.transpose(0, 1).reshape(1, steps * batch, n_in)
    (hs,) = lstm_layer(w_hh, bias, steps, [(0, 1, inp, w_ih)])
    out, _ = ref(x)
    torch.testing.assert_close(hs[0].transpose(0, 1), out, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    models = _members(HIDDEN, 2)
    stack = StackedBDRNN.from_members(models)
    x = torch.rand(len(HIDDEN), 8, 28, 28)
    cpu = stack(x)
    cpu.sum().backward()
    gpu_stack = StackedBDRNN.from_members(models).cuda()
    gpu = gpu_stack(x.cuda())
    gpu.sum().backward()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
    for p, q in zip(stack.parameters(), gpu_stack.parameters()):
        assert _close(q.grad.cpu(), p.grad, 1e-3)
    assert gpu_stack.member_state_dict(0)["fc.bias"].device.type == "cpu"
