"""Hostile model files (issue 17): what cdl._serial reads and refuses, through cdl.load.
Careful saves (cdl._atomic) are in test_atomic.py."""
import io
import json
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdl
from cdl import _serial
from cdl import layers as L
from cdl.layers.base import registered_layers
from cdl.model import Sequential, layer_spec

from ._fuzz import damaged
from .fuzz.fuzz_readers import refused_or_identical


def tiny_net(rng=0):
    return Sequential([L.Conv2D(1, 2, 3, pad=1, rng=rng), L.BatchNorm(2), L.ReLU(),
                       L.Flatten(), L.Affine(2 * 4 * 4, 3, rng=rng)],
                      loss=L.SoftmaxCrossEntropy())


def arch_of(layers, loss="SoftmaxCrossEntropy"):
    return {"format": "cdl-model", "version": 1, "layers": layers,
            "loss": None if loss is None else {"type": loss, "config": {}}}


def npy(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip of members (name -> bytes, or an array made .npy), '.npy' added to names."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data if isinstance(data, bytes) else npy(data))
    return path


def arch_bytes(arch):
    return np.frombuffer(json.dumps(arch).encode(), np.uint8)


def forge(path, arch, state):
    return write_zip(path, {"__arch__": arch_bytes(arch), **state})


def valid_parts():
    net = tiny_net()
    return arch_of([layer_spec(l) for l in net.layers]), net.state()


def assert_fast_refusal(path, match, seconds=0.5, peak_bytes=8 << 20):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match):
            cdl.load(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < seconds
    assert peak < peak_bytes


# -- memory and CPU ------------------------------------------------------------------------

def test_huge_declared_architecture_is_refused_before_allocating(tmp_path):
    """40 x Affine(65536, 1024) (10 GB of weights) in a 3 KB file: refused at once."""
    big = {"type": "Chain", "config": {"layers": [
        {"type": "Affine", "config": {"in_features": 65536, "out_features": 1024}}] * 40}}
    path = forge(tmp_path / "big.npz", arch_of([big]), {})
    assert path.stat().st_size < 4096
    assert_fast_refusal(path, r"declares 2,684,395,520 values, the file holds 0")


def test_header_declaring_more_than_the_member_holds(tmp_path):
    arch, state = valid_parts()
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (65536, 1024)})
    state["params/4.W"] = header.getvalue() + b"\0" * 64
    assert_fast_refusal(forge(tmp_path / "m.npz", arch, state), "declares .* bytes")


def test_zip_bomb_member_is_never_inflated(tmp_path):
    """A 32 MB member deflated to ~32 KB (its name even fits the architecture)."""
    arch, state = valid_parts()
    path = write_zip(tmp_path / "bomb.npz",
                     {"__arch__": arch_bytes(arch), **state,
                      "params/4.W": npy(np.zeros((8 << 20,), np.float32))},
                     zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 100_000
    assert_fast_refusal(path, "zip bomb")


def test_compressed_files_still_load(tmp_path, rng):
    net = tiny_net()
    net.layers[1].running_var[...] = [0.5, 2.0]
    arch = arch_of([layer_spec(l) for l in net.layers])
    path = tmp_path / "c.npz"
    np.savez_compressed(path, __arch__=arch_bytes(arch), **net.state())
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(cdl.load(path).predict(x), net.predict(x))


def test_loading_draws_no_random_weights(tmp_path):
    """Layers are built unfilled: the package generator is not advanced by load."""
    path = tmp_path / "m.npz"
    tiny_net().save(path)
    cdl.seed(7)
    cdl.load(path)
    np.testing.assert_array_equal(cdl.init.get_rng().random(3),
                                  np.random.default_rng(7).random(3))


# -- exception types -------------------------------------------------------------------

def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        cdl.load(tmp_path / "nothing.npz")


def nested_chain(depth):
    spec = {"type": "ReLU", "config": {}}
    for _ in range(depth):
        spec = {"type": "Chain", "config": {"layers": [spec]}}
    return spec


@pytest.mark.parametrize("depth, match", [(40, "nested more than 32 deep"),
                                          (250, "nests .* levels deep")])
def test_deeply_nested_chains_are_a_value_error(tmp_path, depth, match):
    path = forge(tmp_path / "deep.npz", arch_of([nested_chain(depth)]), {})
    with pytest.raises(ValueError, match=match):
        cdl.load(path)


def test_deeply_nested_json_is_a_value_error(tmp_path):
    raw = b'{"format": "cdl-model", "version": 1, "layers": ' + b"[" * 10**5 + b"]" * 10**5 + b"}"
    path = write_zip(tmp_path / "deep.npz", {"__arch__": np.frombuffer(raw, np.uint8)})
    assert_fast_refusal(path, "nests 100001 levels deep")


def test_oversized_architecture_is_refused_unread(tmp_path):
    raw = np.full(2 << 20, ord(" "), np.uint8)
    assert_fast_refusal(write_zip(tmp_path / "big.npz", {"__arch__": raw}),
                        "architecture of 2097152 bytes", peak_bytes=1 << 20)


def test_nesting_inside_strings_does_not_count(tmp_path):
    arch, state = valid_parts()
    arch["note"] = "[[[[{{{{" * 100 + '\\"' + "]]]]" * 100
    net = cdl.load(forge(tmp_path / "m.npz", arch, state))
    assert len(net.layers) == 5


@pytest.mark.parametrize("member", ["__arch__", "params/4.W"])
def test_member_without_npy_header_is_a_value_error(tmp_path, member):
    arch, state = valid_parts()
    members = {"__arch__": arch_bytes(arch), **state, member: b"not an npy file at all"}
    with pytest.raises(ValueError, match=f"member '{member}' has no valid npy header"):
        cdl.load(write_zip(tmp_path / "m.npz", members))


@pytest.mark.parametrize("members, match", [
    ({"notes.txt": b"hi"}, "not an .npy array"),
    ({"params/0.W": np.array([{"a": 1}], dtype=object)}, "dtype object"),
    ({"__arch__": np.zeros(3, np.float32)}, "no architecture record"),
])
def test_odd_members_are_refused(tmp_path, members, match):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name if name.endswith(".txt") else name + ".npy",
                       data if isinstance(data, bytes) else
                       npy(data) if data.dtype != object else _object_npy(data))
    with pytest.raises(ValueError, match=match):
        cdl.load(path)


def _object_npy(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)  # the forger pickles; cdl never loads it
    return buf.getvalue()


@pytest.mark.parametrize("loss", [["SoftmaxCrossEntropy"], "os.system", {"type": ["x"]}])
def test_odd_loss_specs_are_a_value_error(tmp_path, loss):
    arch, state = valid_parts()
    arch["loss"] = loss
    with pytest.raises(ValueError, match="unknown loss"):
        cdl.load(forge(tmp_path / "m.npz", arch, state))


@pytest.mark.parametrize("config, match", [
    ({"in_features": 32, "out_features": 3, "init": "orthogonal"}, "not read from files"),
    ({"in_features": 32, "out_features": 3, "bias": "yes"}, "bias must be true or false"),
    ({"in_features": 32.0, "out_features": 3}, "in_features must be an int"),
])
def test_odd_configs_are_a_value_error(tmp_path, config, match):
    arch, state = valid_parts()
    arch["layers"][4] = {"type": "Affine", "config": config}
    with pytest.raises(ValueError, match=match):
        cdl.load(forge(tmp_path / "m.npz", arch, state))


# -- dtypes and values ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, np.int32, np.complex64])
def test_weights_of_other_dtypes_are_refused(tmp_path, dtype):
    arch, state = valid_parts()
    state["params/4.W"] = state["params/4.W"].astype(dtype)
    with pytest.raises(ValueError, match=f"params/4.W has dtype {np.dtype(dtype)}"):
        cdl.load(forge(tmp_path / "m.npz", arch, state))


def test_float64_and_big_endian_and_fortran_arrays_load(tmp_path, rng):
    net = tiny_net().astype(np.float64)
    net.layers[4].params["W"] = np.asfortranarray(net.layers[4].params["W"])
    arch = arch_of([layer_spec(l) for l in net.layers])
    state = {k: v.astype(v.dtype.newbyteorder(">")) if k == "params/0.W" else v
             for k, v in net.state().items()}
    back = cdl.load(forge(tmp_path / "m.npz", arch, state))
    assert back.params["4.W"].dtype == np.float64
    x = rng.standard_normal((2, 1, 4, 4))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


@pytest.mark.parametrize("key, value, match", [
    ("buffers/1.running_var", [1.0, -0.5], "negative variances"),
    ("buffers/1.running_mean", [0.0, np.inf], "NaN or Inf"),
    ("params/1.gamma", [np.nan, 1.0], "NaN or Inf"),
])
def test_impossible_values_are_refused(tmp_path, key, value, match):
    arch, state = valid_parts()
    state[key] = np.array(value, np.float32)
    with pytest.raises(ValueError, match=match):
        cdl.load(forge(tmp_path / "m.npz", arch, state))


def test_load_state_checks_everything_before_changing_anything():
    net = tiny_net()
    state = {k: v + 1 for k, v in net.state().items()}
    state["buffers/1.running_var"][0] = -1.0
    before = {k: v.copy() for k, v in net.state().items()}
    with pytest.raises(ValueError, match="negative"):
        net.load_state(state)
    for k, v in net.state().items():
        np.testing.assert_array_equal(v, before[k])


# -- the declared-state rules match the layers --------------------------------------------

SAMPLES = {
    "Affine": [L.Affine(3, 2), L.Affine(3, 2, bias=False)],
    "BinaryAffine": [L.BinaryAffine(3, 2, scale=True), L.BinaryAffine(3, 2, bias=False)],
    "Conv2D": [L.Conv2D(2, 3, (2, 1), stride=2, pad=1), L.Conv2D(1, 2, 3, bias=False)],
    "BinaryConv2D": [L.BinaryConv2D(2, 3, 3, scale=True, binarize_input=False)],
    "BatchNorm": [L.BatchNorm(4, momentum=0.5)],
    "Chain": [L.Chain(L.Affine(3, 2), L.BatchNorm(2))],
    "Residual": [L.Residual(L.Conv2D(2, 2, 1), L.ReLU(), shortcut=L.Conv2D(2, 2, 1)),
                 L.Residual(L.Conv2D(2, 2, 1))],
    "Concat": [L.Concat(L.Conv2D(2, 1, 1), [L.MaxPool2D(3, 1, 1), L.Conv2D(2, 1, 1)])],
    "DropConnect": [L.DropConnect(L.Conv2D(2, 3, 3), 0.5), L.DropConnect(L.Affine(3, 2), 0.2)],
    "ReLU": [L.ReLU()], "LeakyReLU": [L.LeakyReLU(0.2)], "Sigmoid": [L.Sigmoid()],
    "Tanh": [L.Tanh()], "Step": [L.Step()], "Softmax": [L.Softmax()], "Flatten": [L.Flatten()],
    "MaxPool2D": [L.MaxPool2D(2)], "AvgPool2D": [L.AvgPool2D(3, 2, 1)],
    "GlobalAvgPool2D": [L.GlobalAvgPool2D()], "Dropout": [L.Dropout(0.3)],
    "GaussianNoise": [L.GaussianNoise(0.1)], "Binarize": [L.Binarize("stochastic")],
}


def test_every_cdl_layer_has_a_sample_and_a_rule():
    mine = {n for n, c in registered_layers().items() if c.__module__.startswith("cdl.")}
    assert mine == set(SAMPLES)
    assert mine == set(_serial.RULES) | _serial.STATELESS


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_declared_state_matches_the_layers(name, tmp_path, rng):
    for layer in SAMPLES[name]:
        net = Sequential([L.ReLU(), layer])
        spec = layer_spec(layer)
        if name in _serial.RULES:
            assert set(spec["config"]) <= _serial.RULES[name][0]
        declared = _serial.declared_state([layer_spec(l) for l in net.layers], registered_layers())
        assert declared == {k: v.shape for k, v in net.state().items()}
        for v in net.state().values():
            v[...] = rng.uniform(0.1, 0.9, v.shape)
        net.save(tmp_path / "m.npz")
        back = cdl.load(tmp_path / "m.npz")
        for k, v in back.state().items():
            np.testing.assert_array_equal(v, net.state()[k])


# -- fuzz ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    Sequential([L.Affine(3, 2, rng=0), L.BatchNorm(2)], loss=L.SoftmaxCrossEntropy()).save(path)
    return path.read_bytes(), cdl.load(path).state()


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_or_truncated_files_are_a_value_error_or_load_identically(small_file, tmp_path,
                                                                          data):
    raw, state = small_file
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(damaged(data, raw))
    refused_or_identical(path, state)


class UserScale(L.Layer):
    """A user's layer type, registered by subclassing: loaded by building it, then comparing."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.params["s"] = np.ones(n, np.float32)
        self._zero_grads()

    def config(self):
        return {"n": self.n}

    def forward(self, x, train=True):
        return x * self.params["s"]

    def backward(self, dout):
        return dout * self.params["s"]


def test_user_layer_types_still_load(tmp_path):
    net = Sequential([L.Affine(3, 4, rng=0), UserScale(4)])
    net.layers[1].params["s"][...] = [1, 2, 3, 4]
    net.save(tmp_path / "m.npz")
    back = cdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.layers[1].params["s"], [1, 2, 3, 4])
    arch = arch_of([layer_spec(l) for l in net.layers], loss=None)
    arch["layers"][1]["config"]["n"] = 10**9
    with pytest.raises(ValueError, match="exceeds what the file stores"):
        cdl.load(forge(tmp_path / "f.npz", arch, net.state()))
