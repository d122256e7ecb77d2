"""The batched trainer against the single-run trainer: same init, same data order, same numbers."""
import numpy as np
import pytest
import torch
from scipy import stats

from signal_noise.batched import train_pack
from signal_noise.config import RunConfig
from signal_noise.engine import plan_run
from signal_noise.train import load_data, train_run


@pytest.fixture(scope="module")
def data20(mnist_root):
    return load_data(mnist_root, 1000, 1000, "cpu")  # batch 50: one epoch is 20 steps


def _solo(cfg, data):
    losses, out = [], {}
    train_run(cfg, data=data, on_step=lambda e, s, l: losses.append(l), on_end=lambda m: out.update(model=m))
    with torch.no_grad():
        pred = out["model"](data.test_x).argmax(-1)
    return np.array(losses), pred


@pytest.mark.parametrize("hidden", [(128, 128, 128), (40, 100, 10)])
def test_stack_matches_single_runs_step_by_step(data20, hidden):
    cfgs = [RunConfig(hidden_size=h, num_layers=2, batch_size=50, epochs=1, n_train=1000, n_test=1000, seed=300 + i)
            for i, h in enumerate(hidden)]
    steps, out = [], {}
    train_pack(cfgs, data20, width=max(hidden), on_step=lambda e, s, l: steps.append(l.numpy()),
               on_end=lambda st: out.update(stack=st))
    stacked_losses = np.stack(steps, axis=1)  # (K, 20)
    assert stacked_losses.shape == (len(cfgs), 20)
    with torch.no_grad():
        stacked_pred = out["stack"](data20.test_x).argmax(-1)
    for k, cfg in enumerate(cfgs):
        losses, pred = _solo(cfg, data20)
        np.testing.assert_allclose(stacked_losses[k], losses, rtol=1e-4)
        assert (stacked_pred[k] == pred).float().mean() >= 0.999


def test_nan_member_fails_alone(data20, monkeypatch):
    from signal_noise import batched

    cfgs = [RunConfig(hidden_size=32, num_layers=2, batch_size=50, epochs=2, n_train=1000, n_test=1000, seed=s)
            for s in (1, 2)]
    built = {}
    original = batched.StackedBDRNN.load_members

    def capture(self, models):  # keep a handle on the stack train_pack builds
        built["stack"] = self
        return original(self, models)

    def poison(epoch, step, losses):  # member 1's head becomes NaN after its first step
        if epoch == 1 and step == 0:
            with torch.no_grad():
                built["stack"].fc_w[1].fill_(float("nan"))

    monkeypatch.setattr(batched.StackedBDRNN, "load_members", capture)
    results = train_pack(cfgs, data20, on_step=poison)
    assert results[1].reason and "loss became nan at epoch 1" in results[1].reason and results[1].records == []
    solo = train_run(cfgs[0], data=data20)
    assert results[0].reason is None
    assert [r.acc for r in results[0].records] == pytest.approx([r.acc for r in solo], abs=0.5)


def test_noise_sample_distribution_agrees(mnist_root):
    data = load_data(mnist_root, 600, 500, "cpu")
    cfgs = [RunConfig(epochs=2, n_train=600, n_test=500, seed=1000 + i) for i in range(8)]
    batched_acc = [m.records[-1].acc for m in train_pack(cfgs, data)]
    single_acc = [train_run(c, data=data)[-1].acc for c in cfgs]
    assert stats.ttest_ind(batched_acc, single_acc).pvalue > 0.05
    assert stats.levene(batched_acc, single_acc).pvalue > 0.05
    assert abs(np.mean(batched_acc) - np.mean(single_acc)) < 2 * np.std(single_acc, ddof=1) / np.sqrt(8) + 0.5


def test_engine_policy():
    noise = RunConfig()
    assert plan_run(noise, "auto", "cpu").path == "lean"  # measured fastest on a CPU (see engine.py)
    assert plan_run(RunConfig(hidden_size=10, num_layers=4, batch_size=64), "auto", "cpu").path == "lean"
    assert plan_run(noise, "batched", "cpu").max_pack > 1
    assert plan_run(RunConfig(hidden_size=10, num_layers=4, batch_size=64), "auto", "cuda").width == 128
    assert plan_run(noise, "single", "cuda").path == "single"
    a = plan_run(RunConfig(hidden_size=10, batch_size=64), "auto", "cuda")
    b = plan_run(RunConfig(hidden_size=90, batch_size=64), "auto", "cuda")
    assert a.key == b.key and a.path == "batched"  # one GPU stack for every hidden size of a (layers, batch)
