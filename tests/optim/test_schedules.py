"""Learning-rate schedules: their formulas, and their use from Trainer."""
import math

import pytest

import cdl
from cdl import optim
from cdl.data import load_digits
from cdl.models import mlp


def test_formulas():
    assert [optim.StepLR(2, gamma=0.5).lr_at(s, 1.0) for s in range(5)] == [1, 1, .5, .5, .25]
    assert optim.ExponentialLR(0.9).lr_at(3, 2.0) == pytest.approx(2 * 0.9 ** 3)
    cos = optim.CosineLR(total=10, lr_min=0.1)
    assert cos.lr_at(0, 1.0) == pytest.approx(1.0)
    assert cos.lr_at(5, 1.0) == pytest.approx(0.55)
    assert cos.lr_at(10, 1.0) == pytest.approx(0.1) and cos.lr_at(50, 1.0) == pytest.approx(0.1)
    assert cos.lr_at(3, 1.0) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.3)))
    warm = optim.LinearWarmup(4, start=0.2, after=optim.ExponentialLR(0.5))
    assert [warm.lr_at(s, 1.0) for s in range(7)] == pytest.approx([.2, .4, .6, .8, 1, .5, .25])
    assert optim.LinearWarmup(2).lr_at(10, 3.0) == 3.0


def _trainer(callbacks, epochs=3, batch=100):
    (x, t), _ = load_digits()
    net = mlp(hidden=(16,), rng=0)
    opt = optim.GradClip(optim.SGD(lr=0.1), max_norm=10.0)  # through a wrapper, too
    tr = cdl.Trainer(net, opt, batch_size=batch, epochs=epochs, seed=0, verbose=False,
                     callbacks=callbacks)
    return tr, x[:300], t[:300]


def test_per_epoch_schedule_in_trainer():
    seen = []

    class Spy(cdl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append(trainer.optimizer.lr)

    tr, x, t = _trainer([optim.StepLR(1, gamma=0.5), Spy()])
    h = tr.fit(x, t)
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert seen == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3)
    # a second fit continues the schedule from the trainer's epoch count
    tr.fit(x, t)
    assert h["lr"][3:] == pytest.approx([0.0125, 0.00625, 0.003125])


def test_per_batch_warmup_in_trainer():
    seen = []

    class Spy(cdl.Callback):
        def on_batch_end(self, trainer, batch, logs):
            seen.append(trainer.optimizer.lr)

    sched = optim.LinearWarmup(4, start=0.0, after=optim.CosineLR(total=4, per="batch"))
    tr, x, t = _trainer([Spy(), sched], epochs=3)  # Spy runs before the schedule steps
    tr.fit(x, t)
    want = [sched.lr_at(s, 0.1) for s in range(9)]
    assert seen == pytest.approx(want)
    assert want[0] == 0 and want[4] == pytest.approx(0.1) and want[8] == pytest.approx(0.0)


@pytest.mark.parametrize("make, match", [
    (lambda: optim.StepLR(0), "step"), (lambda: optim.StepLR(2, gamma=0), "gamma"),
    (lambda: optim.ExponentialLR(1.5), "gamma"), (lambda: optim.CosineLR(0), "total"),
    (lambda: optim.CosineLR(5, lr_min=-1), "lr_min"), (lambda: optim.LinearWarmup(3, start=2), "start"),
    (lambda: optim.LinearWarmup(3, after="cosine"), "after"),
    (lambda: optim.StepLR(2, per="iteration"), "per"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()



def test_linear_warmup_scale_is_goyal_linear_scaling():
    """scale=k: from lr0 (start=1/k) up to k*lr0 over the warm-up, then `after` from k*lr0."""
    from cdl.optim import CosineLR, LinearWarmup
    k, lr0 = 4, 0.1
    s = LinearWarmup(warmup=10, start=1 / k, scale=k, after=CosineLR(total=20))
    assert abs(s.lr_at(0, lr0) - lr0) < 1e-12
    assert abs(s.lr_at(5, lr0) - lr0 * (1 + (k - 1) * 0.5)) < 1e-12
    assert abs(s.lr_at(10, lr0) - k * lr0) < 1e-12
    assert abs(s.lr_at(30, lr0)) < 1e-12  # the cosine's end
    import pytest
    with pytest.raises(ValueError, match="scale"):
        LinearWarmup(warmup=10, scale=0)
