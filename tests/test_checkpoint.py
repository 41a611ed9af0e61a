"""Checkpoints and resume (issue 20): cdl.checkpoint, Trainer.save_checkpoint/load_checkpoint."""
import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdl
from cdl import checkpoint, optim
from cdl import layers as L
from cdl.data import DataLoader, load_digits
from cdl.data import augment as A
from cdl.model import Sequential
from cdl._checks import is_device_array
from cdl.train import Trainer

from ._fuzz import damaged


@pytest.fixture(scope="module")
def digits():
    (x, t), _ = load_digits()
    return x[:240], t[:240]


def conv_net(seed=0, dropout_rng=None):
    return Sequential([L.Conv2D(1, 4, 3, pad=1, rng=seed), L.BatchNorm(4), L.ReLU(),
                       L.Dropout(0.3, rng=dropout_rng), L.Flatten(),
                       L.Affine(4 * 8 * 8, 10, rng=seed + 1)], loss=L.SoftmaxCrossEntropy())


def assert_same_run(a, b):
    """Two trainers hold bit-identical weights, buffers, optimizer state and history."""
    sa, sb = a.model.state(), b.model.state()
    assert set(sa) == set(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    oa, ob = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert (oa["t"], oa["lr"]) == (ob["t"], ob["lr"])
    for k, slots in oa["slots"].items():
        for n, v in slots.items():
            np.testing.assert_array_equal(v, ob["slots"][k][n], err_msg=f"{k}/{n}")
    assert a.epoch == b.epoch
    assert {k: v for k, v in a.history.items() if k != "time"} == \
        {k: v for k, v in b.history.items() if k != "time"}


# -- resume gives the uninterrupted run's weights, bit for bit -------------------------

@pytest.mark.slow
def test_resumed_run_matches_the_uninterrupted_one_bit_for_bit(digits, tmp_path):
    """Adam, a cosine schedule, Dropout drawing from the trainer's noise generator and
    augmentation drawing from its shuffle generator; stopped after epoch 2 of 4."""
    x, t = digits

    def trainer(net, epochs, **kw):
        return Trainer(net, optim.Adam(lr=1e-2), batch_size=32, epochs=epochs, seed=7,
                       callbacks=[optim.CosineLR(total=4, lr_min=1e-4)],
                       augment=A.Compose([A.Translation(0.1), A.GaussianNoise(0.02)]),
                       verbose=False, **kw)

    whole = trainer(conv_net(), 4)
    whole.fit(x, t, validation_data=(x[:50], t[:50]))

    path = tmp_path / "run.ckpt"
    first = trainer(conv_net(), 2, checkpoint=path)
    first.fit(x, t, validation_data=(x[:50], t[:50]))
    del first  # a new process would have nothing but the file
    resumed = trainer(conv_net(seed=3), 2)  # other initial weights: all overwritten
    resumed.load_checkpoint(path)
    assert resumed.epoch == 2 and len(resumed.history["loss"]) == 2
    resumed.fit(x, t, validation_data=(x[:50], t[:50]))
    assert_same_run(whole, resumed)
    assert resumed.history["epoch"] == [1, 2, 3, 4]
    # the run did change the weights, and the noise generator was used
    assert not np.array_equal(whole.model.params["0.W"], conv_net().params["0.W"])


def test_resume_with_a_loader_layer_generators_and_stateful_callbacks(digits, tmp_path):
    """A seeded DataLoader (its own generator, augmenting), a Dropout with its own rng,
    a per-batch warm-up into a cosine schedule, EMA and EarlyStopping: all resume."""
    x, t = digits

    def trainer(epochs, **kw):
        loader = DataLoader(x, t, batch_size=40, seed=11, augment=A.HorizontalFlip())
        callbacks = [optim.LinearWarmup(5, after=optim.CosineLR(total=20)),
                     optim.EMA(decay=0.9, finalize=False),
                     cdl.callbacks.EarlyStopping("loss", patience=50)]
        tr = Trainer(conv_net(dropout_rng=5), optim.Momentum(lr=0.05), epochs=epochs,
                     seed=None, callbacks=callbacks, verbose=False, **kw)
        return tr, loader

    whole, loader = trainer(3)
    whole.fit(loader)
    path = tmp_path / "run.ckpt"
    first, loader = trainer(1, checkpoint=path)
    first.fit(loader)
    resumed, loader = trainer(2)
    resumed.load_checkpoint(path)
    resumed.fit(loader)
    assert_same_run(whole, resumed)
    ema_a, ema_b = whole.callbacks[1], resumed.callbacks[1]
    assert ema_a.n == ema_b.n == 18
    for k in ema_a.average:
        np.testing.assert_array_equal(ema_a.average[k], ema_b.average[k])
    stop_a, stop_b = whole.callbacks[2], resumed.callbacks[2]
    assert (stop_a.best, stop_a.best_epoch, stop_a.wait) == \
        (stop_b.best, stop_b.best_epoch, stop_b.wait)
    assert resumed.callbacks[0].steps == 18


def test_a_checkpoint_is_written_every_epoch_and_holds_the_model(digits, tmp_path):
    x, t = digits
    path = tmp_path / "c.npz"
    seen = []

    class Watch(cdl.Callback):
        def on_epoch_begin(self, trainer, epoch):
            if path.exists():
                seen.append(json.loads(_member(path, checkpoint.META).tobytes())["epoch"])

    tr = Trainer(conv_net(), optim.SGD(lr=0.1), epochs=3, seed=0, checkpoint=path,
                 callbacks=[Watch()], verbose=False)
    tr.fit(x, t)
    assert seen == [1, 2]
    net = checkpoint.load_model(path)
    for k, v in tr.model.state().items():
        np.testing.assert_array_equal(net.state()[k], v)


@pytest.mark.slow  # the simulator runs each GPU thread in Python
def test_save_and_load_by_hand_and_optimizer_state_on_the_device(device, tmp_path):
    """A checkpoint stores host copies; restored state goes to the device of the params."""
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 3)).astype(np.float32), rng.integers(0, 2, 8)

    def make():
        net = Sequential([L.Affine(3, 2, rng=0)], loss=L.SoftmaxCrossEntropy())
        return Trainer(net, optim.Adam(lr=0.1), batch_size=8, epochs=1, seed=0,
                       verbose=False, device=device)

    a = make()
    a.fit(x, t)
    a.save_checkpoint(tmp_path / "c.npz")
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        assert "optimizer/slots/0.W/m.npy" in z.namelist()
    b = make()
    b.load_checkpoint(tmp_path / "c.npz")
    slot = b.optimizer.state["0.W"]["m"]
    assert is_device_array(slot) == (device == "cuda")
    assert is_device_array(b.model.params["0.W"]) == (device == "cuda")
    np.testing.assert_array_equal(cdl.cuda.to_host(slot),
                                  cdl.cuda.to_host(a.optimizer.state["0.W"]["m"]))
    grads = {k: cdl.cuda.to_device(np.ones(v.shape, np.float32)) if device == "cuda"
             else np.ones(v.shape, np.float32) for k, v in a.model.params.items()}
    a.optimizer.update(a.model.params, grads)
    b.optimizer.update(b.model.params, grads)
    np.testing.assert_array_equal(cdl.cuda.to_host(a.model.params["0.W"]),
                                  cdl.cuda.to_host(b.model.params["0.W"]))


@pytest.mark.slow
def test_state_restored_on_the_host_follows_the_model_to_the_device(tmp_path):
    if not cdl.cuda.is_available():
        pytest.skip("no CUDA GPU and the simulator is off")
    x, t = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    net = Sequential([L.Affine(3, 2, rng=0)], loss=L.SoftmaxCrossEntropy())
    a = Trainer(net, optim.Adam(), batch_size=4, epochs=1, seed=0, verbose=False)
    a.fit(x, t)
    a.save_checkpoint(tmp_path / "c.npz")
    b = Trainer(Sequential([L.Affine(3, 2)], loss=L.SoftmaxCrossEntropy()), optim.Adam(),
                batch_size=4, epochs=1, seed=0, verbose=False, callbacks=[])
    b.load_checkpoint(tmp_path / "c.npz")
    assert not is_device_array(b.optimizer.state["0.W"]["m"])
    b.model.to_device()  # the optimizer's state follows at its next update
    b.model.loss(cdl.cuda.to_device(x), cdl.cuda.to_device(t))
    b.model.backward()
    b.optimizer.update(b.model.params, b.model.grads)
    assert is_device_array(b.optimizer.state["0.W"]["m"])


# -- files ------------------------------------------------------------------------------

def small_trainer(seed=0, **kw):
    net = Sequential([L.Affine(3, 4, rng=seed), L.BatchNorm(4), L.Dropout(0.5, rng=seed),
                      L.Affine(4, 2, rng=seed + 1)], loss=L.SoftmaxCrossEntropy())
    return Trainer(net, optim.Adam(lr=0.05), batch_size=4, epochs=2, seed=seed,
                   callbacks=[optim.StepLR(1, gamma=0.5)], verbose=False, **kw)


def small_data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((12, 3)).astype(np.float32), rng.integers(0, 2, 12)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(bytes of a checkpoint after 2 epochs, the trainer that wrote it)."""
    path = tmp_path_factory.mktemp("ck") / "c.npz"
    tr = small_trainer()
    tr.fit(*small_data())
    tr.save_checkpoint(path)
    return path.read_bytes(), tr


def _member(path, name):
    with zipfile.ZipFile(path) as z:
        return np.load(io.BytesIO(z.read(name + ".npy")), allow_pickle=False)


def _members(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        return {n[:-4]: z.read(n) for n in z.namelist()}


def _rewrite(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            if not isinstance(data, bytes):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(data), allow_pickle=False)
                data = buf.getvalue()
            z.writestr(name + ".npy", data)
    return path


def _meta(members):
    return json.loads(np.load(io.BytesIO(members[checkpoint.META])).tobytes())


def _with_meta(members, meta):
    return {**members, checkpoint.META: np.frombuffer(json.dumps(meta).encode(), np.uint8)}


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_checkpoint_files_get_the_users_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        small_trainer().save_checkpoint(tmp_path / "c.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.npz").stat().st_mode) == mode


def test_the_folder_is_checked_before_training(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        small_trainer(checkpoint=tmp_path / "missing" / "c.npz")
    with pytest.raises(ValueError, match="is a folder"):
        small_trainer(checkpoint=tmp_path)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        small_trainer().load_checkpoint(tmp_path / "none.npz")
    with pytest.raises(FileNotFoundError):
        checkpoint.load_model(tmp_path / "none.npz")


def test_an_interrupted_write_keeps_the_previous_checkpoint(saved, tmp_path, monkeypatch):
    raw, _ = saved
    path = tmp_path / "c.npz"
    path.write_bytes(raw)

    def dies(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", dies)
    tr = small_trainer(seed=1)
    with pytest.raises(KeyboardInterrupt):
        tr.save_checkpoint(path)
    assert path.read_bytes() == raw and os.listdir(tmp_path) == ["c.npz"]


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import cdl
    from cdl import layers as L, optim
    net = cdl.Sequential([L.Affine(512, 512, rng=0)], loss=L.MeanSquaredError())
    tr = cdl.Trainer(net, optim.Adam(), batch_size=4, epochs=1, seed=0, verbose=False)
    tr.fit(np.ones((4, 512), np.float32), np.ones((4, 512), np.float32))
    tr.save_checkpoint(sys.argv[1])
    print("ready", flush=True)
    while True:
        tr.epoch += 1
        tr.save_checkpoint(sys.argv[1])
""")


@pytest.mark.slow
def test_a_kill_at_any_moment_leaves_a_whole_checkpoint(tmp_path):
    path = tmp_path / "c.npz"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 20
        while not any(p.suffix == ".tmp" for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline, "the child never started a save"
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=20)
        child.stdout.close()
    net = Sequential([L.Affine(512, 512)], loss=L.MeanSquaredError())
    tr = Trainer(net, optim.Adam(), verbose=False)
    tr.load_checkpoint(path)
    assert tr.epoch >= 1 and tr.optimizer.t == 1


# -- refusals --------------------------------------------------------------------------

def _refused(path, match, trainer=None):
    tr = trainer or small_trainer(seed=5)
    before = {k: v.copy() for k, v in tr.model.state().items()}
    rng_before = tr.rng.bit_generator.state
    with pytest.raises(ValueError, match=match or None):
        tr.load_checkpoint(path)
    for k, v in tr.model.state().items():  # nothing changed
        np.testing.assert_array_equal(v, before[k])
    assert tr.rng.bit_generator.state == rng_before and tr.epoch == 0 and tr.optimizer.t == 0


def test_another_model_or_optimizer_or_callbacks_are_refused(saved, tmp_path):
    raw, _ = saved
    path = tmp_path / "c.npz"
    path.write_bytes(raw)
    net = Sequential([L.Affine(3, 5), L.BatchNorm(5), L.Dropout(0.5, rng=0), L.Affine(5, 2)],
                     loss=L.SoftmaxCrossEntropy())
    _refused(path, "another model: layer 0", Trainer(net, optim.Adam(), verbose=False))
    tr = small_trainer()
    tr.optimizer = optim.SGD()
    with pytest.raises(ValueError, match="of a 'Adam', not a SGD"):
        tr.load_checkpoint(path)
    tr = small_trainer()
    tr.callbacks = []
    with pytest.raises(ValueError, match="callbacks with state"):
        tr.load_checkpoint(path)
    tr = small_trainer()
    tr.model.layers[2]._rng = None  # no generator of its own here
    with pytest.raises(ValueError, match="generators of layers"):
        tr.load_checkpoint(path)
    net = small_trainer().model
    net.save(tmp_path / "model.npz")
    _refused(tmp_path / "model.npz", "no checkpoint record")


def _forged(saved, tmp_path, change):
    members = _members(saved[0])
    meta = _meta(members)
    out = change(members, meta)
    return _rewrite(tmp_path / "f.npz", out if out is not None else _with_meta(members, meta))


def _pickled():
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([1.0, None], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _huge():
    """An npy header declaring 10^12 float64 values, followed by 8 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": (10**12,)})
    return buf.getvalue() + bytes(8)


def _set(path_keys, value):
    def change(members, meta):
        d = meta
        for k in path_keys[:-1]:
            d = d[k]
        d[path_keys[-1]] = value
    return change


FORGERIES = [
    ("wrong shape", lambda m, meta: {**m, "params/0.W": np.zeros((3, 5), np.float32)},
     "params/0.W is float32 \\(3, 5\\)"),
    ("wrong dtype", lambda m, meta: {**m, "params/0.W": np.zeros((3, 4))}, "float64"),
    ("missing array", lambda m, meta: {k: v for k, v in m.items() if k != "buffers/1.running_var"},
     "missing"),
    ("object array", lambda m, meta: {**m, "history/loss": _pickled()}, "dtype object"),
    ("absurd size", lambda m, meta: {**m, "history/loss": _huge()}, "declares"),
    ("slot shape", lambda m, meta: {**m, "optimizer/slots/0.W/m": np.zeros(3, np.float32)},
     "optimizer: .*slot '0.W/m'"),
    ("unknown layer", lambda m, meta: {**m, "__arch__": np.frombuffer(json.dumps(
        {"format": "cdl-model", "version": 1, "layers": [{"type": "Evil", "config": {}}],
         "loss": None}).encode(), np.uint8)}, "another model: layer 0"),
    ("nan weights", lambda m, meta: {**m, "params/0.b": np.full(4, np.nan, np.float32)},
     "NaN"),
    ("negative variance", lambda m, meta: {**m, "buffers/1.running_var": -np.ones(4, np.float32)},
     "negative variances"),
    ("unreferenced member", lambda m, meta: {**m, "extra": np.zeros(3)}, "unreferenced"),
    ("deep nesting", lambda m, meta: {**m, checkpoint.META: np.frombuffer(json.dumps(
        {**meta, "history": "@"}).replace('"@"', "[" * 5000 + "]" * 5000).encode(), np.uint8)},
     "nests"),
    ("version", _set(["version"], 99), "unsupported version"),
    ("format", _set(["format"], "cdl-model"), "wrong format tag"),
    ("keys", _set(["extra"], 1), "keys"),
    ("epoch", _set(["epoch"], -1), "epoch must be"),
    ("huge epoch", _set(["epoch"], 10**40), "epoch must be"),
    ("history", _set(["history", "loss"], [1.0, 2.0]), "history"),
    ("bit generator", _set(["rng", "trainer", "bit_generator"], "Evil"), "unknown bit generator"),
    ("generator key", _set(["rng", "trainer", "state"], {"x": 1}), "expected keys"),
    ("generator int", _set(["rng", "trainer", "state", "state"], 2**200), "int in"),
    ("generator string", _set(["rng", "noise", "state", "inc"], "1"), "int in"),
    ("layer generators", _set(["rng", "layers"], {}), "generators of layers"),
    ("optimizer t", _set(["optimizer", "t"], "3"), "t must be"),
    ("optimizer lr", _set(["optimizer", "lr"], -1), "lr must be"),
    ("optimizer type", _set(["optimizer", "type"], "SGD"), "not a Adam"),
    ("array twice", _set(["optimizer", "slots", "0.W", "m"], {"__array__": "history/loss"}),
     "referenced twice"),
    ("missing ref", _set(["optimizer", "slots", "0.W", "m"], {"__array__": "nope"}),
     "missing member"),
    ("ref to weights", _set(["optimizer", "slots", "0.W", "m"], {"__array__": "params/0.W"}),
     "missing member"),
    ("callback state", _set(["callbacks", 0, "state", "steps"], -2), "callback StepLR"),
    ("callback list", _set(["callbacks"], {}), "callbacks must be"),
]


@pytest.mark.parametrize("change, match", [f[1:] for f in FORGERIES],
                         ids=[f[0] for f in FORGERIES])
def test_forged_checkpoints_are_a_value_error(saved, tmp_path, change, match):
    path = _forged(saved, tmp_path, change)
    if match.startswith("callback"):  # callbacks load last; the rest is checked before
        with pytest.raises(ValueError, match=match):
            small_trainer(seed=5).load_checkpoint(path)
    else:
        _refused(path, match)


def test_load_model_refuses_what_cdl_load_refuses(saved, tmp_path):
    def arch(layers):
        return lambda m, meta: {**m, "__arch__": np.frombuffer(json.dumps(
            {"format": "cdl-model", "version": 1, "layers": layers, "loss": None}).encode(),
            np.uint8)}
    for layers, match in [([{"type": "Evil", "config": {}}], "unknown layer type"),
                          ([{"type": "Affine", "config": {"in_features": 10**12,
                                                          "out_features": 10**12}}],
                           "exceeds|missing"),
                          ([{"type": "Chain", "config": {"layers": []}}], "unexpected")]:
        path = _forged(saved, tmp_path, arch(layers))
        with pytest.raises(ValueError, match=match):
            checkpoint.load_model(path)
    net = small_trainer().model
    net.save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="no checkpoint record"):
        checkpoint.load_model(tmp_path / "model.npz")


def test_truncated_checkpoints_are_a_value_error(saved, tmp_path):
    raw, _ = saved
    for n in (0, 10, len(raw) // 2, len(raw) - 1):
        (tmp_path / "t.npz").write_bytes(raw[:n])
        _refused(tmp_path / "t.npz", "")


# -- fuzz ------------------------------------------------------------------------------

def _assert_restored(tr, ref):
    assert_same_run(tr, ref)
    assert tr.rng.bit_generator.state == ref.rng.bit_generator.state
    assert tr.noise_rng.bit_generator.state == ref.noise_rng.bit_generator.state
    assert tr.model.layers[2]._rng.bit_generator.state == \
        ref.model.layers[2]._rng.bit_generator.state
    assert tr.callbacks[0].state_dict() == ref.callbacks[0].state_dict()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_checkpoints_are_a_value_error_or_restore_exactly(saved, tmp_path, data):
    raw, ref = saved
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(damaged(data, raw))
    try:
        net = checkpoint.load_model(path)
    except ValueError:
        pass
    else:
        for k, v in ref.model.state().items():
            np.testing.assert_array_equal(net.state()[k], v)
    tr = small_trainer(seed=5)
    try:
        tr.load_checkpoint(path)
    except ValueError:
        return
    _assert_restored(tr, ref)


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                     | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@pytest.mark.slow
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_forged_records_are_a_value_error_or_load(saved, tmp_path, data):
    """Any JSON value anywhere in the checkpoint record: a ValueError or a clean load,
    never another exception."""
    members = _members(saved[0])
    meta = _meta(members)
    paths = [p for p in _paths(meta) if p]
    where = data.draw(st.sampled_from(paths), label="where")
    value = data.draw(_JSON, label="value")
    d = meta
    for k in where[:-1]:
        d = d[k]
    d[where[-1]] = value
    path = _rewrite(tmp_path / "forged.npz", _with_meta(members, meta))
    try:
        small_trainer(seed=5).load_checkpoint(path)
    except ValueError:
        pass


# -- cdl train --checkpoint ------------------------------------------------------------

def test_cdl_train_resumes_from_its_checkpoint_bit_for_bit(tmp_path, monkeypatch, capsys):
    from cdl.cli import main
    common = ["train", "--model", "mlp", "--epochs", "3", "--seed", "2"]
    assert main([*common, "--save", str(tmp_path / "whole.npz")]) == 0
    capsys.readouterr()

    original = Trainer._train_epoch

    def ctrl_c_in_epoch_2(self, x, t, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, x, t, epoch)
    ck = tmp_path / "run.ckpt"
    monkeypatch.setattr(Trainer, "_train_epoch", ctrl_c_in_epoch_2)
    assert main([*common, "--checkpoint", str(ck)]) == 130
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    assert "interrupted after epoch 1" in capsys.readouterr().err
    assert main([*common, "--checkpoint", str(ck), "--save", str(tmp_path / "resumed.npz")]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "after epoch 1" in out
    assert "epoch   2/3" in out and "epoch   1/3" not in out
    whole, resumed = cdl.load(tmp_path / "whole.npz"), cdl.load(tmp_path / "resumed.npz")
    for k, v in whole.state().items():
        np.testing.assert_array_equal(resumed.state()[k], v, err_msg=k)
    # a finished run resumes to nothing more; another model is one line and status 2
    assert main([*common, "--checkpoint", str(ck)]) == 0
    assert "epoch   " not in capsys.readouterr().out
    assert main(["train", "--model", "cnn", "--epochs", "3", "--checkpoint", str(ck)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "another model" in err


def test_cdl_train_checks_the_checkpoint_folder_first(tmp_path, capsys):
    from cdl.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--model", "mlp", "--checkpoint", str(tmp_path / "no" / "c.ckpt")])
    assert exit_.value.code == 2
    assert "does not exist" in capsys.readouterr().err
