"""One LSTM layer of many independent cells at once, as an autograd Function with a hand-written BPTT.

N independent cells (K members x 2 directions, or K members for a last layer's forward direction) advance
together, so each time step costs one batched matmul and a handful of elementwise kernels whatever N is.
The input projection for all T steps is computed inside the Function, straight into the buffer the
recurrence then works in, so no preactivation tensor is allocated or copied on the way.

Conventions: gate columns are in (o, i, f, g) blocks of H, so one kernel activates the three sigmoid gates,
and in the backward pass the three gates driven by dc (i, f, g) are adjacent too. Cells start from
h0 = c0 = 0. Rows of a (N, T * B, .) tensor are step-major: row s * B + b is step s of sample b; a backward
direction's inputs arrive already reversed in time, so "step" is the order in which a cell consumes them.
"""
from __future__ import annotations

from typing import Sequence

import torch


class LSTMLayer(torch.autograd.Function):
    """Hidden states of N LSTM cells, input projection included.

    Forward args:
      steps: T.
      terms: ((row0, rows), ...), one per projection term: cells row0 .. row0 + rows - 1 receive
        inp_j @ w_j. Several terms may feed the same cells (they add up), e.g. the two halves of a
        bidirectional layer's input.
      out_split: sizes (summing to N) of the cell groups returned as separate outputs.
      last_only: return only the final step's h.
      w_hh: (N, H, 4H) recurrent weights, transposed (h @ w_hh).
      bias: (N, 4H) b_ih + b_hh.
      *tensors: inp_0, w_0, inp_1, w_1, ...: inp_j (rows_j, T * B, In_j) (may be expanded along dim 0),
        w_j (rows_j, In_j, 4H).
    Returns:
      one (n_g, T, B, H) tensor per group of out_split (views of one buffer), or (N, B, H) if last_only.
    """

    @staticmethod
    def forward(ctx, steps, terms, out_split, last_only, w_hh, bias, *tensors):
        n, h = w_hh.shape[0], w_hh.shape[1]
        batch = tensors[0].shape[1] // steps
        act = w_hh.new_empty(n, steps, batch, 4 * h)
        flat = act.view(n, steps * batch, 4 * h)
        started = set()
        for j, (row0, rows) in enumerate(terms):
            inp, w = tensors[2 * j], tensors[2 * j + 1]
            dst = flat[row0: row0 + rows]
            if row0 in started:  # a later term for the same cells adds in place
                dst.baddbmm_(inp, w)
            else:
                torch.baddbmm(bias[row0: row0 + rows].unsqueeze(1), inp, w, out=dst)
                started.add(row0)

        # Slot 0 of hs/cs is the zero initial state, so step s reads slot s and writes slot s + 1.
        hs = act.new_empty(n, steps + 1, batch, h)
        cs = act.new_empty(n, steps + 1, batch, h)
        hs[:, 0].zero_()
        cs[:, 0].zero_()
        tanh_c = act.new_empty(n, steps, batch, h)
        _forward_steps(act, hs, cs, tanh_c, w_hh)

        ctx.save_for_backward(w_hh, act, cs, tanh_c, hs, *tensors)
        ctx.terms, ctx.out_split, ctx.last_only = terms, out_split, last_only
        ctx.set_materialize_grads(False)
        if last_only:
            return hs[:, steps]
        outs, row0 = [], 0
        for rows in out_split:
            outs.append(hs[row0: row0 + rows, 1:])
            row0 += rows
        return tuple(outs)

    @staticmethod
    def backward(ctx, *d_outs):
        w_hh, act, cs, tanh_c, hs, *tensors = ctx.saved_tensors
        n, steps, batch, four_h = act.shape
        h = four_h // 4
        o, i, f, g = (act[..., j * h: (j + 1) * h] for j in range(4))
        if ctx.last_only:
            d_last = act.new_zeros(n, batch, h) if d_outs[0] is None else d_outs[0]
            d_hs = None
        else:
            # An output nobody used arrives as None (set_materialize_grads(False)): zeros for its cells.
            d_last = None
            parts = [act.new_zeros(rows, steps, batch, h) if d is None else d
                     for d, rows in zip(d_outs, ctx.out_split)]
            d_hs = parts[0] if len(parts) == 1 else torch.cat(parts, 0)

        # d_pre[:, s] = mult[:, s] * (dh for o | dc for i, f, g). mult does not depend on the incoming
        # gradient, so it is computed for all steps at once, in the buffer that then becomes d_pre.
        d_pre = torch.empty_like(act)
        sig = act[..., : 3 * h]
        torch.addcmul(sig, sig, sig, value=-1.0, out=d_pre[..., : 3 * h])  # s (1 - s)
        d_pre[..., :h].mul_(tanh_c)
        d_pre[..., h: 2 * h].mul_(g)
        d_pre[..., 2 * h: 3 * h].mul_(cs[:, :steps])
        m_g = torch.mul(g, g, out=d_pre[..., 3 * h:])
        torch.addcmul(i, i, m_g, value=-1.0, out=m_g)  # i (1 - g^2)
        dc_from_dh = tanh_c * tanh_c
        torch.addcmul(o, o, dc_from_dh, value=-1.0, out=dc_from_dh)  # o (1 - tanh(c)^2)

        w_t = w_hh.transpose(1, 2).contiguous()  # a contiguous B operand is the faster GEMM here
        _backward_steps(d_pre, dc_from_dh, f, w_t, d_hs, d_last)

        flat = d_pre.view(n, steps * batch, four_h)
        # One matmul over all steps for the recurrent weights: sum_s h_{s-1}^T d_pre_s.
        h_prev = hs[:, :steps].reshape(n, steps * batch, h)
        d_w_hh = torch.bmm(h_prev.transpose(1, 2), flat) if ctx.needs_input_grad[4] else None
        d_bias = flat.sum(1) if ctx.needs_input_grad[5] else None
        d_tensors = []
        for j, (row0, rows) in enumerate(ctx.terms):
            inp, w = tensors[2 * j], tensors[2 * j + 1]
            d_j = flat[row0: row0 + rows]
            need_inp, need_w = ctx.needs_input_grad[6 + 2 * j], ctx.needs_input_grad[7 + 2 * j]
            d_tensors.append(torch.bmm(d_j, w.transpose(1, 2)) if need_inp else None)
            d_tensors.append(torch.bmm(inp.transpose(1, 2), d_j) if need_w else None)
        return (None, None, None, None, d_w_hh, d_bias, *d_tensors)


def _forward_steps(act: torch.Tensor, hs: torch.Tensor, cs: torch.Tensor, tanh_c: torch.Tensor,
                   w_hh: torch.Tensor) -> None:
    """The recurrence over all steps, in place.

    Args:
      act: (n, T, B, 4H) input preactivations; left holding the gate activations (o, i, f, g).
      hs, cs: (n, T + 1, B, H) with slot 0 zero; slots 1.. receive h_s, c_s.
      tanh_c: (n, T, B, H) receives tanh(c_s).
      w_hh: (n, H, 4H).
    """
    h = hs.shape[-1]
    # Per-step views made up front in C++ (unbind): at small sizes creating them inside the loop would
    # cost as much as the kernels.
    a_s, sig_s, g_s = act.unbind(1), act[..., : 3 * h].unbind(1), act[..., 3 * h:].unbind(1)
    o_s, i_s, f_s = (act[..., j * h: (j + 1) * h].unbind(1) for j in range(3))
    h_s, c_s, tc_s = hs.unbind(1), cs.unbind(1), tanh_c.unbind(1)
    for s in range(act.shape[1]):
        a_s[s].baddbmm_(h_s[s], w_hh)
        sig_s[s].sigmoid_()
        g_s[s].tanh_()
        torch.mul(f_s[s], c_s[s], out=c_s[s + 1])
        c_s[s + 1].addcmul_(i_s[s], g_s[s])
        torch.tanh(c_s[s + 1], out=tc_s[s])
        torch.mul(o_s[s], tc_s[s], out=h_s[s + 1])


def _backward_steps(d_pre: torch.Tensor, dc_from_dh: torch.Tensor, f: torch.Tensor, w_t: torch.Tensor,
                    d_hs: torch.Tensor | None, d_last: torch.Tensor | None) -> None:
    """BPTT over all steps, in place.

    Args:
      d_pre: (n, T, B, 4H) holding the gate multipliers on entry, the preactivation gradients on exit.
      dc_from_dh: (n, T, B, H) o (1 - tanh(c)^2).
      f: (n, T, B, H) forget gate activations.
      w_t: (n, 4H, H) recurrent weights transposed.
      d_hs: (n, T, B, H) gradient of every step's h, or None when only the last step's is given.
      d_last: (n, B, H) gradient of the last h (used when d_hs is None).
    """
    n, steps, batch, four_h = d_pre.shape
    h = four_h // 4
    dc = d_pre.new_zeros(n, batch, h)  # carries dc_{s+1} f_{s+1} into step s
    dc_3 = dc.unsqueeze(2)  # the same memory, broadcast over the three dc-driven gates
    dh_buf = d_pre.new_empty(n, batch, h)
    dp_s, dp_o_s = d_pre.unbind(1), d_pre[..., :h].unbind(1)
    dp_ifg_s = d_pre[..., h:].unflatten(-1, (3, h)).unbind(1)
    dcdh_s, f_s = dc_from_dh.unbind(1), f.unbind(1)
    dhs_s = None if d_hs is None else d_hs.unbind(1)
    for s in range(steps - 1, -1, -1):
        if s == steps - 1:
            dh = d_last if dhs_s is None else dhs_s[s]
        elif dhs_s is None:
            dh = torch.bmm(dp_s[s + 1], w_t, out=dh_buf)
        else:
            dh = torch.baddbmm(dhs_s[s], dp_s[s + 1], w_t, out=dh_buf)
        dc.addcmul_(dh, dcdh_s[s])
        dp_o_s[s].mul_(dh)
        dp_ifg_s[s].mul_(dc_3)
        dc.mul_(f_s[s])


def lstm_layer(w_hh: torch.Tensor, bias: torch.Tensor, steps: int,
               terms: Sequence[tuple[int, int, torch.Tensor, torch.Tensor]],
               out_split: Sequence[int] | None = None, last_only: bool = False):
    """Run N LSTM cells over ``steps`` steps (functional form of :class:`LSTMLayer`).

    Args:
      w_hh: (N, H, 4H) recurrent weights, gate columns (o, i, f, g).
      bias: (N, 4H) b_ih + b_hh.
      steps: T.
      terms: (row0, rows, inp, w) projection terms; inp (rows, T * B, In) step-major, w (rows, In, 4H).
        The first term touching a cell must cover exactly the cells of the later terms it shares.
      out_split: sizes of the returned groups of cells (default: one group of all N).
      last_only: return only h after the last step.
    Returns:
      tuple of (n_g, T, B, H) hidden states in step order, one per group; or (N, B, H) if last_only.
    """
    layout = tuple((row0, rows) for row0, rows, _, _ in terms)
    flat = [t for _, _, inp, w in terms for t in (inp, w)]
    split = tuple(out_split) if out_split is not None else (w_hh.shape[0],)
    return LSTMLayer.apply(steps, layout, split, last_only, w_hh, bias, *flat)
