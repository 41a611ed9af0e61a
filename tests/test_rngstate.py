"""cdl.rngstate: generator states as JSON and back, forged states refused, set in place."""
import json

import numpy as np
import pytest

from cdl.rngstate import generator, rng_state, set_generator


@pytest.mark.parametrize("bit", ["PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937"])
def test_a_state_survives_json_and_continues_the_stream(bit):
    rng = np.random.Generator(getattr(np.random, bit)(7))
    rng.random(5)
    state = json.loads(json.dumps(rng_state(rng)))
    back = generator(state)
    np.testing.assert_array_equal(back.random(10), rng.random(10))


@pytest.mark.parametrize("change, match", [
    (lambda s: {**s, "bit_generator": "Evil"}, "unknown bit generator"),
    (lambda s: {**s, "state": {"x": 1}}, "expected keys"),
    (lambda s: {**s, "state": {**s["state"], "state": 2 ** 200}}, r"int in \[0, 2\^128\)"),
    (lambda s: {**s, "state": {**s["state"], "inc": "1"}}, "int in"),
    (lambda s: {**s, "has_uint32": True}, "int in"),
    (lambda s: [s], "unknown bit generator"),
])
def test_forged_states_are_a_value_error(change, match):
    state = rng_state(np.random.default_rng(0))
    with pytest.raises(ValueError, match=match):
        generator(change(state))


def test_mt19937_key_length_is_checked():
    state = rng_state(np.random.Generator(np.random.MT19937(0)))
    state["state"]["key"] = state["state"]["key"][:-1]
    with pytest.raises(ValueError, match="expected 624 ints"):
        generator(state)


def test_set_generator_moves_the_state_in_place_when_it_can():
    current, new = np.random.default_rng(0), np.random.default_rng(1)
    want = np.random.default_rng(1).random(3)
    assert set_generator(current, new) is current
    np.testing.assert_array_equal(current.random(3), want)
    other = np.random.Generator(np.random.Philox(2))
    assert set_generator(current, other) is other  # another bit generator: replaced
    assert set_generator(None, new) is new
