"""The BDRNN of yunjey's pytorch-tutorial, the model the whole study is about."""
from __future__ import annotations

import math

import torch
from torch import nn

SEQ_LEN = 28      # an MNIST image is read as 28 rows ...
INPUT_SIZE = 28   # ... of 28 pixels each
NUM_CLASSES = 10


class BDRNN(nn.Module):
    """Bidirectional LSTM over image rows, classifying from the last time step.

    Args:
      input_size: features per time step (28 pixels of a row).
      hidden_size: LSTM units per direction.
      num_layers: stacked bidirectional LSTM layers.
      num_classes: output classes.
    """

    def __init__(self, input_size: int = INPUT_SIZE, hidden_size: int = 128, num_layers: int = 2,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(hidden_size * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 28, 28) pixel rows in [0, 1]. Returns (batch, num_classes) logits."""
        shape = (self.num_layers * 2, x.size(0), self.hidden_size)
        h0 = torch.zeros(shape, dtype=x.dtype, device=x.device)
        c0 = torch.zeros(shape, dtype=x.dtype, device=x.device)
        out, _ = self.lstm(x, (h0, c0))
        # Kept from the tutorial on purpose: out[:, -1] is the forward direction's last state but the
        # backward direction's *first* step, which has seen only the last row. The study measures this model.
        return self.fc(out[:, -1, :])


class LeanBDRNN(BDRNN):
    """The same model, the same parameters and the same numbers, without the dead work.

    ``BDRNN`` reads only ``out[:, -1]``. There the last layer's backward direction has consumed a
    single row (row 27, from a zero state), so its other 27 steps feed nothing: about a third of the
    FLOPs at 2 layers. This forward runs the lower layers and the last layer's forward direction with
    torch's own LSTM kernel (the one ``nn.LSTM`` calls, on slices of its flat weight list) and the last
    backward step as one explicit cell update, where h0 = c0 = 0 drops the recurrent and forget terms.
    It subclasses BDRNN, so its state dict is the tutorial model's, key for key.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, 28, 28) pixel rows in [0, 1]. Returns (batch, num_classes) logits."""
        layers, hidden, batch = self.num_layers, self.hidden_size, x.size(0)
        flat = self.lstm._flat_weights  # per layer: w_ih, w_hh, b_ih, b_hh, then the same _reverse
        below = 8 * (layers - 1)
        seq = x
        if layers > 1:
            zeros = x.new_zeros(2 * (layers - 1), batch, hidden)
            seq = torch._VF.lstm(x, (zeros, zeros), flat[:below], True, layers - 1, 0.0, self.training, True,
                                 True)[0]
        zeros = x.new_zeros(1, batch, hidden)
        forward_dir = torch._VF.lstm(seq, (zeros, zeros), flat[below:below + 4], True, 1, 0.0, self.training,
                                     False, True)[0][:, -1]
        w_ih, _w_hh, b_ih, b_hh = flat[below + 4:below + 8]
        i, _f, g, o = torch.addmm(b_ih + b_hh, seq[:, -1], w_ih.t()).chunk(4, dim=1)
        backward_dir = torch.sigmoid(o) * torch.tanh(torch.sigmoid(i) * torch.tanh(g))
        return self.fc(torch.cat([forward_dir, backward_dir], dim=1))


def init_bdrnn_(model: BDRNN, generator: torch.Generator) -> BDRNN:
    """Draw PyTorch's default initialisation for every parameter from ``generator``.

    The distributions and the order of draws are those of ``nn.LSTM.reset_parameters`` followed by
    ``nn.Linear.reset_parameters`` (uniform on +-1/sqrt(hidden) for the LSTM, +-1/sqrt(fan_in) for the
    linear layer), so ``torch.manual_seed(s); BDRNN(...)`` and this with ``Generator().manual_seed(s)``
    give the same weights, while the run owns its random stream.
    """
    with torch.no_grad():
        bound = 1.0 / math.sqrt(model.hidden_size)
        for p in model.lstm.parameters():
            p.copy_(_uniform(p.shape, bound, generator))
        fan_in = model.fc.in_features
        fc_bound = 1.0 / math.sqrt(fan_in)
        model.fc.weight.copy_(_uniform(model.fc.weight.shape, fc_bound, generator))
        model.fc.bias.copy_(_uniform(model.fc.bias.shape, fc_bound, generator))
    return model


def _uniform(shape: torch.Size, bound: float, generator: torch.Generator) -> torch.Tensor:
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


def make_model(hidden_size: int, num_layers: int, seed: int, lean: bool = False) -> tuple[BDRNN, torch.Generator]:
    """A freshly initialised BDRNN (``LeanBDRNN`` when ``lean``) on the CPU and the generator,
    advanced past the init draws, that then drives the run's data order."""
    generator = torch.Generator().manual_seed(seed)
    cls = LeanBDRNN if lean else BDRNN
    model = init_bdrnn_(cls(hidden_size=hidden_size, num_layers=num_layers), generator)
    return model, generator


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(hidden_size: int, num_layers: int, steps: int = SEQ_LEN, input_size: int = INPUT_SIZE) -> int:
    """FLOPs (2 per multiply-add) of the tutorial's forward pass for one image: every step of both
    directions of every layer, as nn.LSTM computes them, plus the linear head."""
    total = 0
    for layer in range(num_layers):
        fan_in = input_size if layer == 0 else 2 * hidden_size
        total += 2 * steps * 2 * 4 * hidden_size * (fan_in + hidden_size)
    return total + 2 * 2 * hidden_size * NUM_CLASSES


def run_flops(hidden_size: int, num_layers: int, n_train: int, n_test: int, epochs: int) -> float:
    """A whole run's FLOPs: training (forward + backward, about 3 forwards) and an evaluation per epoch."""
    f = forward_flops(hidden_size, num_layers)
    return float(epochs) * (3 * f * n_train + f * n_test)

