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


def make_model(hidden_size: int, num_layers: int, seed: int) -> tuple[BDRNN, torch.Generator]:
    """A freshly initialised BDRNN on the CPU and the generator, advanced past the init draws,
    that then drives the run's data order."""
    generator = torch.Generator().manual_seed(seed)
    model = init_bdrnn_(BDRNN(hidden_size=hidden_size, num_layers=num_layers), generator)
    return model, generator


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
