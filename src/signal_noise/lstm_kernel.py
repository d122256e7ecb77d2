"""The LSTM recurrence of many independent cells at once, as one autograd Function with a hand-written BPTT.

The input projection (x W_ih + b) is done outside in a single matmul per layer and direction; this Function
only runs the part that is inherently sequential. N independent recurrences (K members x 2 directions, or
K members for a last layer's forward direction) advance together, so each time step is one batched matmul
and a handful of elementwise kernels, whatever N is.

Internal gate order is (o, i, f, g): the three sigmoid gates are adjacent, so one kernel activates them,
and in the backward pass the gates driven by dc (i, f, g) are adjacent, so one kernel covers them.
"""
from __future__ import annotations

import torch


class LSTMRecurrence(torch.autograd.Function):
    """h_t, c_t of N LSTM cells from precomputed input preactivations, zero initial state.

    Forward args:
      w_hh: (N, H, 4H) recurrent weights, transposed (h @ w_hh), gate columns in (o, i, f, g) order.
      *g_parts: tensors (N_j, T, B, 4H) with sum N_j = N: x_t W_ih + b_ih + b_hh for each step, in the
        order the cell consumes them (a backward direction's parts are already time-reversed).
    Returns:
      (N, T, B, H) hidden states, step s of cell n at [n, s].
    """

    @staticmethod
    def forward(ctx, w_hh: torch.Tensor, *g_parts: torch.Tensor) -> torch.Tensor:
        # The preactivation buffer becomes the activation buffer in place; cat also gives us our own copy.
        act = torch.cat(g_parts, 0) if len(g_parts) > 1 else g_parts[0].contiguous().clone()
        n, steps, batch, four_h = act.shape
        h = four_h // 4
        # Slot 0 of hs/cs is the zero initial state, so step s reads slot s and writes slot s + 1.
        hs = act.new_zeros(n, steps + 1, batch, h)
        cs = act.new_zeros(n, steps + 1, batch, h)
        tanh_c = act.new_empty(n, steps, batch, h)
        for s in range(steps):
            a = act[:, s]
            a.baddbmm_(hs[:, s], w_hh)
            a[..., : 3 * h].sigmoid_()
            a[..., 3 * h:].tanh_()
            c = cs[:, s + 1]
            torch.mul(a[..., 2 * h: 3 * h], cs[:, s], out=c)
            c.addcmul_(a[..., h: 2 * h], a[..., 3 * h:])
            torch.tanh(c, out=tanh_c[:, s])
            torch.mul(a[..., :h], tanh_c[:, s], out=hs[:, s + 1])
        ctx.save_for_backward(w_hh, act, cs, tanh_c, hs)
        ctx.part_sizes = [p.shape[0] for p in g_parts]
        return hs[:, 1:]

    @staticmethod
    def backward(ctx, d_hs: torch.Tensor):
        w_hh, act, cs, tanh_c, hs = ctx.saved_tensors
        n, steps, batch, four_h = act.shape
        h = four_h // 4
        o, i, f, g = (act[..., j * h: (j + 1) * h] for j in range(4))

        # Everything that does not depend on the incoming gradient is computed for all steps at once,
        # leaving the sequential loop with five kernels per step.
        # mult[..., gate] * (dh for o, dc for i, f, g) = d preactivation of that gate.
        mult = torch.empty_like(act)
        sig = act[..., : 3 * h]
        torch.addcmul(sig, sig, sig, value=-1.0, out=mult[..., : 3 * h])  # s(1 - s)
        mult[..., :h].mul_(tanh_c)
        mult[..., h: 2 * h].mul_(g)
        mult[..., 2 * h: 3 * h].mul_(cs[:, :steps])
        torch.addcmul(i, i, g * g, value=-1.0, out=mult[..., 3 * h:])  # i (1 - g^2)
        dc_from_dh = torch.addcmul(o, o, tanh_c * tanh_c, value=-1.0)  # o (1 - tanh(c)^2)

        d_pre = torch.empty_like(act)
        dc = act.new_zeros(n, batch, h)  # carries dc_{s+1} f_{s+1} into step s
        dh_buf = act.new_empty(n, batch, h)
        w_t = w_hh.transpose(1, 2)
        for s in range(steps - 1, -1, -1):
            if s == steps - 1:
                dh = d_hs[:, s]
            else:
                dh = torch.baddbmm(d_hs[:, s], d_pre[:, s + 1], w_t, out=dh_buf)
            dc.addcmul_(dh, dc_from_dh[:, s])
            dp = d_pre[:, s]
            torch.mul(dh, mult[:, s, :, :h], out=dp[..., :h])
            torch.mul(dc.unsqueeze(2), mult[:, s, :, h:].unflatten(-1, (3, h)),
                      out=dp[..., h:].unflatten(-1, (3, h)))
            dc.mul_(f[:, s])

        # One matmul over all steps for the recurrent weights: sum_s h_{s-1}^T d_pre_s.
        h_prev = hs[:, :steps].reshape(n, steps * batch, h)
        d_w = torch.bmm(h_prev.transpose(1, 2), d_pre.view(n, steps * batch, four_h))
        return (d_w, *d_pre.split(ctx.part_sizes, 0))


def lstm_recurrence(w_hh: torch.Tensor, *g_parts: torch.Tensor) -> torch.Tensor:
    """Functional form of :class:`LSTMRecurrence`.

    Args:
      w_hh: (N, H, 4H) recurrent weights, gate columns (o, i, f, g).
      *g_parts: (N_j, T, B, 4H) input preactivations, sum N_j = N.
    Returns:
      (N, T, B, H) hidden states in step order.
    """
    return LSTMRecurrence.apply(w_hh, *g_parts)
