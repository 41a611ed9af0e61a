"""cdl.model_file: save/load round trips, atomic writes, and forged or damaged files refused."""
import json
import os
import zipfile

import numpy as np
import pytest

import cdl
from cdl import layers as L

from .test_model import tiny_net


def test_save_load_roundtrip(tmp_path, rng):
    net = tiny_net()
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    path = tmp_path / "m.npz"
    net.save(path)
    back = cdl.load(path)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    assert [type(a) for a in back.layers] == [type(a) for a in net.layers]
    assert isinstance(back.loss_layer, L.SoftmaxCrossEntropy)


def test_save_is_atomic(tmp_path, monkeypatch):
    net = tiny_net()
    path = tmp_path / "m.npz"
    net.save(path)
    before = path.read_bytes()

    def crash(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        tiny_net(rng=5).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def _forge(tmp_path, arch=None, arrays=None, drop=None):
    net = tiny_net()
    state = {k: v for k, v in net.state().items() if k != drop}
    if arrays:
        state.update(arrays)
    good = {"format": "cdl-model", "version": 1,
            "layers": [{"type": type(l).__name__, "config": l.config()} for l in net.layers],
            "loss": {"type": "SoftmaxCrossEntropy", "config": {}}}
    if arch is not None:
        good = arch(good)
    path = tmp_path / "forged.npz"
    np.savez(path, __arch__=np.frombuffer(json.dumps(good).encode(), np.uint8), **state)
    return path


@pytest.mark.parametrize("forge, match", [
    (lambda p: _forge(p, drop="params/0.W"), "missing"),
    (lambda p: _forge(p, arrays={"params/0.W": np.zeros((4, 1, 2, 2), np.float32)}), "shape"),
    (lambda p: _forge(p, arrays={"params/9.W": np.zeros(3, np.float32)}), "unexpected"),
    (lambda p: _forge(p, arch=lambda a: {**a, "layers": [{"type": "os.system", "config": {}}]}),
     "unknown layer type"),
    (lambda p: _forge(p, arch=lambda a: {**a, "layers": [{"type": "Affine",
                                                         "config": {"in_features": 10**12,
                                                                    "out_features": 10**12}}]}),
     "exceeds"),
    (lambda p: _forge(p, arch=lambda a: {**a, "layers": [{"type": "Affine",
                                                         "config": {"bogus": 1}}]}),
     "cannot build"),
    (lambda p: _forge(p, arch=lambda a: {**a, "version": 99}), "version"),
    (lambda p: _forge(p, arrays={"params/0.W": np.full((4, 1, 3, 3), np.nan, np.float32)}), "NaN"),
])
def test_forged_files_are_refused(tmp_path, forge, match):
    with pytest.raises(ValueError, match=match):
        cdl.load(forge(tmp_path))


def test_truncated_and_garbage_files(tmp_path):
    path = tmp_path / "m.npz"
    tiny_net().save(path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a valid cdl model"):
            cdl.load(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(ValueError, match="not a valid cdl model"):
        cdl.load(junk)


def test_pickled_object_arrays_are_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __arch__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a valid cdl model"):
        cdl.load(path)
    assert zipfile.is_zipfile(path)


def test_the_old_names_in_cdl_model_are_this_module_s():
    from cdl import model, model_file
    for name in ("load", "save", "architecture", "layer_spec", "build_layer", "FORMAT",
                 "VERSION"):
        assert getattr(model, name) is getattr(model_file, name), name
    assert cdl.load is model_file.load
