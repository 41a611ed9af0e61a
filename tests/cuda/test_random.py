"""cdl.cuda._random: device generators seeded from a NumPy generator, reproducible by seed."""
import numpy as np
import pytest
from numba import cuda

from cdl.cuda import _random
from cdl.cuda._launch import THREADS


@cuda.jit
def _uniform_k(states, out):
    start, step = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = _random.xoroshiro128p_uniform_float64(states, start)


def _draw(seed, n):
    states, blocks, threads = _random.generators(np.random.default_rng(seed), n)
    out = cuda.device_array(n)
    _uniform_k[blocks, threads](states, out)
    return out.copy_to_host()


@pytest.mark.slow  # seeds 512 simulated threads
def test_one_state_per_thread_at_most_the_cap(monkeypatch):
    states, blocks, threads = _random.generators(np.random.default_rng(0), 300)
    assert (blocks, threads) == (2, THREADS) and states.size == 2 * THREADS
    assert states.dtype == _random.xoroshiro128p_dtype
    monkeypatch.setattr(_random, "_RNG_BLOCKS", 1)  # the cap, without seeding 512 blocks here
    states, blocks, _ = _random.generators(np.random.default_rng(0), 10**9)
    assert blocks == 1 and states.size == THREADS


@pytest.mark.slow  # seeds and draws on 1,500 simulated threads
def test_same_seed_same_numbers_and_the_generator_moves_on():
    a, b, c = _draw(5, 300), _draw(5, 300), _draw(6, 300)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert ((a >= 0) & (a < 1)).all() and len(np.unique(a)) == a.size
    rng = np.random.default_rng(5)
    s1 = _random.generators(rng, 8)[0].copy_to_host()
    s2 = _random.generators(rng, 8)[0].copy_to_host()
    assert not np.array_equal(s1, s2)  # a second draw from one generator: other states


def test_states_differ_between_threads():
    states = _random.generators(np.random.default_rng(1), THREADS)[0].copy_to_host()
    assert len({bytes(s) for s in states}) == states.size
