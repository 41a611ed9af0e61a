"""cdl.loss_scaling: LossScaler grows, backs off, unscales, and saves its state."""
import numpy as np
import pytest

from cdl.loss_scaling import LossScaler


def test_overflow_skips_and_halves_clean_steps_grow_after_the_interval():
    s = LossScaler(init_scale=8.0, growth_interval=3)
    for _ in range(2):
        s.update(True)
    assert s.scale == 8.0
    s.update(False)                      # an overflow: halve, and the count starts over
    assert (s.scale, s.skipped, s.steps) == (4.0, 1, 3)
    for _ in range(2):
        s.update(True)
    assert s.scale == 4.0
    s.update(True)                       # the third clean step in a row doubles it
    assert s.scale == 8.0
    for _ in range(3):
        s.update(True)
    assert s.scale == 16.0


def test_unscale_divides_in_place_and_reports_inf_and_nan():
    s = LossScaler(init_scale=4.0)
    g = {"a": np.array([4.0, -8.0], np.float32), "b": np.array([[2.0]], np.float32)}
    assert s.unscale(g)
    np.testing.assert_array_equal(g["a"], [1.0, -2.0])
    np.testing.assert_array_equal(g["b"], [[0.5]])
    for bad in (np.inf, np.nan):
        g = {"a": np.array([4.0, bad], np.float32), "b": np.array([8.0], np.float32)}
        assert not s.unscale(g)
        assert g["b"][0] == 2.0  # every gradient unscaled, even after a bad one


def test_a_scale_that_never_stops_overflowing_is_an_error():
    s = LossScaler(init_scale=1.0)
    with pytest.raises(FloatingPointError, match="at every scale"):
        for _ in range(30):
            s.update(False)


def test_scaler_state_round_trip_and_bad_states():
    s = LossScaler(growth_interval=5)
    s.update(True), s.update(False), s.update(True)
    r = LossScaler(growth_interval=5)
    r.load_state_dict(s.state_dict())
    assert r.state_dict() == s.state_dict() == {"scale": 32768.0, "growth_tracker": 1,
                                                "steps": 3, "skipped": 1}
    for bad in ({"scale": 0.0}, {"scale": float("inf")}, {"growth_tracker": 5},
                {"skipped": 4}, {"steps": -1}):
        with pytest.raises(ValueError):
            r.load_state_dict({**s.state_dict(), **bad})
    assert r.state_dict() == s.state_dict()  # refused states change nothing
    with pytest.raises(ValueError):
        LossScaler(backoff_factor=1.5)


def test_precision_still_names_it():
    from cdl import precision
    assert precision.LossScaler is LossScaler
