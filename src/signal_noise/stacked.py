"""K independent tutorial BDRNNs trained as one module: stacked parameters, one recurrence per layer.

Each member k is exactly ``BDRNN(hidden_size=hidden_sizes[k], num_layers=L)``. Members are padded to the
widest one, Hmax; every weight and bias that touches a padded unit is zero, so a padded unit's gates sit
at (o, i, f, g) = (0.5, 0.5, 0.5, 0) and its h and c stay exactly 0, and every gradient flowing into or
out of it is exactly 0. Adam is elementwise, so one Adam over the stacked tensors updates each member as
its own Adam would, and never moves the padding.

The tutorial classifies from ``out[:, -1]``, where the last layer's backward direction has only consumed
row 27 from a zero state; that direction is computed as that single step, everything else in full.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
from typing import Sequence

import torch
from torch import nn

from signal_noise.lstm_kernel import lstm_layer
from signal_noise.model import BDRNN, INPUT_SIZE, NUM_CLASSES

# Internal gate slot j holds nn.LSTM's gate _TORCH_GATE[j]; nn.LSTM orders its gates (i, f, g, o).
_TORCH_GATE = (3, 0, 1, 2)  # internal (o, i, f, g)
_SLOT_OF_TORCH_GATE = tuple(_TORCH_GATE.index(q) for q in range(4))
_SUFFIX = ("", "_reverse")


def retain_freed_memory() -> bool:
    """Keep freed heap memory in the process (glibc only) instead of returning it to the OS.

    A training step allocates tens of MB of activations and gradients and frees them again. glibc serves
    blocks over 32 MB with fresh mmaps and trims the heap eagerly, so every step page-faults its buffers
    in anew: measured at about a fifth of the CPU time of a K=8, hidden-128 step. With mmap off and
    trimming off the same blocks are reused. Process-wide, and the process keeps its peak heap; call it
    once at the start of a CPU training process. Not needed on CUDA (PyTorch caches device memory).

    Returns:
      True if the allocator was reconfigured, False where glibc's mallopt is not available.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


class StackedBDRNN(nn.Module):
    """K BDRNNs with the same layer count, evaluated and trained together.

    Parameters (d = 0 forward, 1 backward direction; gate columns in (o, i, f, g) blocks of Hmax):
      w_ih[l]: (2, K, In_l, 4 Hmax), In_0 = input_size, In_l = 2 Hmax (forward units, then backward).
      w_hh[l]: (2, K, Hmax, 4 Hmax).  b_ih[l], b_hh[l]: (2, K, 4 Hmax) (kept apart, as nn.LSTM does, so
        Adam sees the same two tensors).  fc_w: (K, 2 Hmax, num_classes).  fc_b: (K, num_classes).

    Args:
      hidden_sizes: LSTM units per direction of each member; K = len(hidden_sizes).
      num_layers: bidirectional layers of every member.
      input_size: features per time step.
      num_classes: output classes.
      width: internal units per direction, Hmax (default and minimum: max(hidden_sizes)).
    """

    def __init__(self, hidden_sizes: Sequence[int], num_layers: int, input_size: int = INPUT_SIZE,
                 num_classes: int = NUM_CLASSES, width: int | None = None):
        super().__init__()
        if len(hidden_sizes) == 0 or min(hidden_sizes) < 1 or num_layers < 1:
            raise ValueError(f"need >= 1 member, hidden sizes >= 1 and num_layers >= 1, got "
                             f"hidden_sizes={list(hidden_sizes)}, num_layers={num_layers}")
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.num_members = len(self.hidden_sizes)
        self.hmax = max(self.hidden_sizes) if width is None else int(width)
        if self.hmax < max(self.hidden_sizes):
            raise ValueError(f"width {width} is narrower than the widest member ({max(self.hidden_sizes)})")
        self.num_layers = num_layers
        self.input_size = input_size
        self.num_classes = num_classes
        k, hm = self.num_members, self.hmax
        in_sizes = [input_size] + [2 * hm] * (num_layers - 1)
        self.w_ih = nn.ParameterList([nn.Parameter(torch.zeros(2, k, n_in, 4 * hm)) for n_in in in_sizes])
        self.w_hh = nn.ParameterList([nn.Parameter(torch.zeros(2, k, hm, 4 * hm)) for _ in in_sizes])
        self.b_ih = nn.ParameterList([nn.Parameter(torch.zeros(2, k, 4 * hm)) for _ in in_sizes])
        self.b_hh = nn.ParameterList([nn.Parameter(torch.zeros(2, k, 4 * hm)) for _ in in_sizes])
        self.fc_w = nn.Parameter(torch.zeros(k, 2 * hm, num_classes))
        self.fc_b = nn.Parameter(torch.zeros(k, num_classes))
        self._init_default()

    # ---- mapping between the tutorial's nn.LSTM layout and the stacked one ----------------------------

    def _index(self, k: int, layer: int,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Internal positions of member k's real entries.

        Returns:
          rows_in: (In_l of the member,) internal input rows of nn.LSTM's weight_ih columns.
          cols: (4 h,) internal gate columns of nn.LSTM's gate rows (i, f, g, o blocks of h).
          feat: (2 h,) internal rows of fc's input features (forward units, then backward).
        """
        h, hm = self.hidden_sizes[k], self.hmax
        units = torch.arange(h, device=device)
        feat = torch.cat([units, hm + units])
        rows_in = torch.arange(self.input_size, device=device) if layer == 0 else feat
        cols = torch.cat([_SLOT_OF_TORCH_GATE[q] * hm + units for q in range(4)])
        return rows_in, cols, feat

    def load_members(self, models: Sequence[BDRNN]) -> "StackedBDRNN":
        """Copy K tutorial models' weights in; padded entries are set to zero.

        Args:
          models: K BDRNNs, models[k] with hidden_sizes[k] units and num_layers layers.
        Returns:
          self.
        """
        if len(models) != self.num_members:
            raise ValueError(f"expected {self.num_members} models, got {len(models)}")
        for k, m in enumerate(models):
            if (m.hidden_size, m.num_layers) != (self.hidden_sizes[k], self.num_layers) or \
                    m.lstm.input_size != self.input_size or m.fc.out_features != self.num_classes:
                raise ValueError(
                    f"member {k}: model has hidden_size={m.hidden_size}, num_layers={m.num_layers}, "
                    f"input_size={m.lstm.input_size}, num_classes={m.fc.out_features}; the stack expects "
                    f"hidden_size={self.hidden_sizes[k]}, num_layers={self.num_layers}, "
                    f"input_size={self.input_size}, num_classes={self.num_classes}")
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()
            for k, m in enumerate(models):
                sd = {name: t.detach().to(self.fc_w.device, self.fc_w.dtype)
                      for name, t in m.state_dict().items()}
                for layer in range(self.num_layers):
                    rows_in, cols, _ = self._index(k, layer, self.fc_w.device)
                    units = torch.arange(self.hidden_sizes[k], device=self.fc_w.device)
                    for d, suf in enumerate(_SUFFIX):
                        self.w_ih[layer][d, k][rows_in[:, None], cols] = sd[f"lstm.weight_ih_l{layer}{suf}"].T
                        self.w_hh[layer][d, k][units[:, None], cols] = sd[f"lstm.weight_hh_l{layer}{suf}"].T
                        self.b_ih[layer][d, k][cols] = sd[f"lstm.bias_ih_l{layer}{suf}"]
                        self.b_hh[layer][d, k][cols] = sd[f"lstm.bias_hh_l{layer}{suf}"]
                _, _, feat = self._index(k, 0, self.fc_w.device)
                self.fc_w[k][feat] = sd["fc.weight"].T
                self.fc_b[k] = sd["fc.bias"]
        return self

    @classmethod
    def from_members(cls, models: Sequence[BDRNN]) -> "StackedBDRNN":
        """A stack holding copies of ``models`` (all with the same num_layers), float32 on the CPU."""
        if len(models) == 0:
            raise ValueError("need at least one model")
        m0 = models[0]
        stack = cls([m.hidden_size for m in models], m0.num_layers, m0.lstm.input_size, m0.fc.out_features)
        return stack.load_members(models)

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights in the tutorial's layout, for ``BDRNN(hidden_size=hidden_sizes[k],
        num_layers=num_layers).load_state_dict``: keys ``lstm.weight_ih_l0``, ..., ``fc.bias``, CPU tensors
        of this module's dtype, detached copies."""
        out: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for layer in range(self.num_layers):
                rows_in, cols, _ = self._index(k, layer, self.fc_w.device)
                units = torch.arange(self.hidden_sizes[k], device=self.fc_w.device)
                for d, suf in enumerate(_SUFFIX):
                    out[f"lstm.weight_ih_l{layer}{suf}"] = self.w_ih[layer][d, k][rows_in[:, None], cols].T
                    out[f"lstm.weight_hh_l{layer}{suf}"] = self.w_hh[layer][d, k][units[:, None], cols].T
                    out[f"lstm.bias_ih_l{layer}{suf}"] = self.b_ih[layer][d, k][cols]
                    out[f"lstm.bias_hh_l{layer}{suf}"] = self.b_hh[layer][d, k][cols]
            _, _, feat = self._index(k, 0, self.fc_w.device)
            out["fc.weight"] = self.fc_w[k][feat].T
            out["fc.bias"] = self.fc_b[k].clone()
        return {name: t.detach().contiguous().cpu() for name, t in out.items()}

    def padding_mask(self) -> dict[str, torch.Tensor]:
        """Where each parameter is padding: name (as in named_parameters) -> bool tensor of its shape,
        True at entries that must stay exactly 0."""
        real = {name: torch.zeros_like(p, dtype=torch.bool) for name, p in self.named_parameters()}
        dev = self.fc_w.device
        for k, h in enumerate(self.hidden_sizes):
            units = torch.arange(h, device=dev)
            for layer in range(self.num_layers):
                rows_in, cols, _ = self._index(k, layer, dev)
                for d in range(2):
                    real[f"w_ih.{layer}"][d, k][rows_in[:, None], cols] = True
                    real[f"w_hh.{layer}"][d, k][units[:, None], cols] = True
                    real[f"b_ih.{layer}"][d, k][cols] = True
                    real[f"b_hh.{layer}"][d, k][cols] = True
            _, _, feat = self._index(k, 0, dev)
            real["fc_w"][k][feat] = True
            real["fc_b"][k] = True
        return {name: ~mask for name, mask in real.items()}

    def _init_default(self) -> None:
        """PyTorch's default LSTM/Linear distributions on each member's real entries (from the global
        RNG); runs that need their own seed build BDRNNs with make_model and call load_members."""
        with torch.no_grad():
            masks = self.padding_mask()
            for name, p in self.named_parameters():
                p.zero_()
            for k, h in enumerate(self.hidden_sizes):
                for layer in range(self.num_layers):
                    for p in (self.w_ih[layer], self.w_hh[layer], self.b_ih[layer], self.b_hh[layer]):
                        p[:, k].uniform_(-1.0 / math.sqrt(h), 1.0 / math.sqrt(h))
                bound = 1.0 / math.sqrt(2 * h)
                self.fc_w[k].uniform_(-bound, bound)
                self.fc_b[k].uniform_(-bound, bound)
            for name, p in self.named_parameters():
                p.masked_fill_(masks[name], 0.0)

    # ---- forward ----------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member.

        Args:
          x: (K, B, T, input_size), member k reading its own batch x[k]; or (B, T, input_size), one batch
            read by all members (broadcast, not copied K times).
        Returns:
          (K, B, num_classes) logits; [k] equals BDRNN member k applied to its batch.
        """
        k, hm = self.num_members, self.hmax
        if x.dim() == 3:
            x = x.unsqueeze(0)
        elif x.dim() != 4 or x.shape[0] != k:
            raise ValueError(f"x must be (B, T, {self.input_size}) or ({k}, B, T, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        steps, batch, tb = x.shape[2], x.shape[1], x.shape[1] * x.shape[2]
        # Step-major rows, so a step's B rows are contiguous in the projection; a shared batch's size-1
        # leading dim broadcasts over the members via expand (stride 0) instead of a copy.
        x_f = x.transpose(1, 2).reshape(x.shape[0], tb, -1).expand(k, -1, -1)
        for layer in range(self.num_layers):
            last = layer == self.num_layers - 1
            bias = self.b_ih[layer] + self.b_hh[layer]  # (2, K, 4Hmax)
            w = self.w_ih[layer]
            if layer == 0:
                fwd = [(x_f, w[0])]
                if not last:
                    x_b = x.flip(2).transpose(1, 2).reshape(x.shape[0], tb, -1).expand(k, -1, -1)
                    bwd = [(x_b, w[1])]
                last_in = x[:, :, -1].expand(k, -1, -1)  # row T-1, all the last backward step reads
            else:
                # Input at time t is [h_f(t), h_b(t)] and the backward cell made h_b(t) at step T-1-t, so
                # each direction reads one half as is and the other time-reversed: two terms, no concat.
                hf_time, hb_step = h_f.reshape(k, tb, hm), h_b.reshape(k, tb, hm)
                fwd = [(hf_time, w[0, :, :hm]), (h_b.flip(1).reshape(k, tb, hm), w[0, :, hm:])]
                if not last:
                    bwd = [(h_f.flip(1).reshape(k, tb, hm), w[1, :, :hm]), (hb_step, w[1, :, hm:])]
                last_in = torch.cat([h_f[:, -1], h_b[:, 0]], -1)
            if not last:
                terms = [(0, k, *t) for t in fwd] + [(k, k, *t) for t in bwd]
                h_f, h_b = lstm_layer(self.w_hh[layer].flatten(0, 1), bias.flatten(0, 1), steps, terms,
                                      out_split=(k, k))
            else:
                h_fwd = lstm_layer(self.w_hh[layer][0], bias[0], steps, [(0, k, *t) for t in fwd],
                                   last_only=True)
                h_bwd = self._first_step(torch.baddbmm(bias[1].unsqueeze(1), last_in, w[1]))
        feat = torch.cat([h_fwd, h_bwd], -1)  # (K, B, 2Hmax) = the tutorial's out[:, -1, :]
        return torch.baddbmm(self.fc_b.unsqueeze(1), feat, self.fc_w)

    def _first_step(self, pre: torch.Tensor) -> torch.Tensor:
        """One LSTM step from h0 = c0 = 0: the recurrent and forget-gate terms vanish.

        Args:
          pre: (K, B, 4Hmax) x W_ih + b_ih + b_hh, gates (o, i, f, g).
        Returns:
          (K, B, Hmax) h.
        """
        hm = self.hmax
        o = torch.sigmoid(pre[..., :hm])
        i = torch.sigmoid(pre[..., hm: 2 * hm])
        g = torch.tanh(pre[..., 3 * hm:])
        return o * torch.tanh(i * g)
