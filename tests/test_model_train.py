import dataclasses

import pytest
import torch

from signal_noise.config import RunConfig
from signal_noise.errors import UserError
from signal_noise.model import BDRNN, make_model
from signal_noise.train import TrainingFault, accuracy, batch_slices, train_run


def test_output_shape():
    model = BDRNN(hidden_size=12, num_layers=3)
    assert model(torch.rand(5, 28, 28)).shape == (5, 10)


def test_init_matches_torch_default_under_manual_seed():
    torch.manual_seed(7)
    reference = BDRNN(hidden_size=30, num_layers=2)
    ours, _ = make_model(30, 2, seed=7)
    for (k, a), (_, b) in zip(reference.state_dict().items(), ours.state_dict().items()):
        assert torch.equal(a, b), k


def test_batch_slices_keep_the_remainder():
    assert [(s.start, s.stop) for s in batch_slices(10, 4)] == [(0, 4), (4, 8), (8, 10)]


def test_config_validation():
    for bad in ({"batch_size": 0}, {"hidden_size": -3}, {"num_layers": 0}, {"epochs": "2"}, {"lr": float("nan")},
                {"n_train": 70000}):
        with pytest.raises(UserError):
            RunConfig(**bad)


def test_short_run_beats_chance(small_data):
    cfg = RunConfig(hidden_size=32, num_layers=2, batch_size=16, epochs=2, n_train=600, n_test=500)
    records = train_run(cfg, data=small_data)
    assert [r.epoch for r in records] == [1, 2]
    assert records[-1].acc > 30.0  # chance is 10%; this setting reaches about 45%
    assert records[-1].loss < records[0].loss
    assert all(r.seconds > 0 for r in records)


def test_same_seed_same_result_other_seed_differs(small_data):
    cfg = RunConfig(hidden_size=16, num_layers=2, batch_size=64, epochs=1, n_train=600, n_test=500, seed=5)
    a = train_run(cfg, data=small_data)
    b = train_run(cfg, data=small_data)
    c = train_run(dataclasses.replace(cfg, seed=6), data=small_data)
    assert [(r.acc, r.loss) for r in a] == [(r.acc, r.loss) for r in b]
    assert [(r.acc, r.loss) for r in a] != [(r.acc, r.loss) for r in c]


def test_absurd_learning_rate_is_a_training_fault(small_data):
    cfg = RunConfig(hidden_size=16, num_layers=2, batch_size=64, epochs=2, n_train=600, n_test=500, lr=1e37)
    with pytest.raises(TrainingFault, match="loss became"):
        train_run(cfg, data=small_data)


def test_accuracy_counts_percent():
    class Constant(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 3] = 1
            return out

    y = torch.tensor([3, 3, 1, 3])
    assert accuracy(Constant(), torch.zeros(4, 28, 28), y) == 75.0


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_lean_model_matches_the_tutorial_model(layers):
    from signal_noise.model import LeanBDRNN

    torch.manual_seed(0)
    plain = BDRNN(hidden_size=24, num_layers=layers).double()
    lean = LeanBDRNN(hidden_size=24, num_layers=layers).double()
    lean.load_state_dict(plain.state_dict())
    assert list(lean.state_dict()) == list(plain.state_dict())  # loadable into the tutorial model as is
    x = torch.rand(7, 28, 28, dtype=torch.float64)
    y = torch.randint(0, 10, (7,))
    out_plain, out_lean = plain(x), lean(x)
    torch.testing.assert_close(out_lean, out_plain, rtol=1e-10, atol=1e-12)
    torch.nn.functional.cross_entropy(out_plain, y).backward()
    torch.nn.functional.cross_entropy(out_lean, y).backward()
    for (name, p), q in zip(plain.named_parameters(), lean.parameters()):
        if name == f"lstm.weight_hh_l{layers - 1}_reverse":
            # the last backward step starts from h0 = 0: the tutorial model's gradient there is exactly
            # zero, and the lean model does not even touch it (Adam then leaves it alone either way)
            assert q.grad is None and torch.count_nonzero(p.grad) == 0
            continue
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_lean_training_follows_the_tutorial_model(small_data):
    cfg = RunConfig(hidden_size=32, num_layers=2, batch_size=64, epochs=1, n_train=600, n_test=500, seed=3)
    plain, lean = [], []
    train_run(cfg, data=small_data, on_step=lambda e, s, l: plain.append(l))
    train_run(cfg, data=small_data, on_step=lambda e, s, l: lean.append(l), lean=True)
    assert len(plain) == len(lean) == 10
    assert plain == pytest.approx(lean, rel=1e-4)
