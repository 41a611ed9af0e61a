"""cdl.tune.space: Uniform and LogUniform ranges, their grids and random draws, space checks."""
import numpy as np
import pytest

from cdl import tune
from cdl.tune.space import check_space, grid_points, random_points


def _zero(params, report):
    return 0.0


def test_grid_refuses_ranges_and_ranges_make_grids():
    with pytest.raises(ValueError, match=r"grid search needs lists.*\.grid\(k\)"):
        tune.search({"lr": tune.LogUniform(1e-4, 1e-1)}, _zero, "grid")
    assert np.allclose(tune.LogUniform(1e-4, 1e-1).grid(4), [1e-4, 1e-3, 1e-2, 1e-1])
    assert tune.Uniform(0, 1).grid(3) == [0.0, 0.5, 1.0]
    assert tune.LogUniform(1e-4, 1e-2).grid(1) == pytest.approx([1e-3])


def test_random_is_reproducible_by_seed_and_log_uniform_within_bounds():
    space = {"lr": tune.LogUniform(1e-6, 1e-2), "wd": tune.Uniform(0.0, 0.5), "k": [3, 5]}
    draws = lambda seed: [t["params"] for t in sorted(  # noqa: E731
        tune.search(space, lambda p, r: 0.0, "random", n_trials=5, seed=seed),
        key=lambda t: t["number"])]
    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    points = random_points(space, 4000, seed=0)
    lr = np.array([p["lr"] for p in points])
    assert lr.min() >= 1e-6 and lr.max() <= 1e-2
    # log-uniform: each of the four decades gets a quarter of the draws
    counts = np.histogram(np.log10(lr), bins=[-6, -5, -4, -3, -2])[0]
    assert np.all(np.abs(counts / len(lr) - 0.25) < 0.03), counts
    assert all(0 <= p["wd"] <= 0.5 for p in points)
    assert {p["k"] for p in points} == {3, 5}


def test_ranges_check_their_bounds():
    with pytest.raises(ValueError, match="lo must be > 0"):
        tune.LogUniform(0, 1)
    with pytest.raises(ValueError, match="lo < hi"):
        tune.Uniform(2, 1)
    with pytest.raises(ValueError, match="non-empty list"):
        tune.search({"a": []}, _zero, "grid")
    with pytest.raises(ValueError, match="method"):
        tune.search({"a": [1]}, _zero, "bayes")
    with pytest.raises(ValueError, match="needs n_trials"):
        tune.search({"a": [1]}, _zero, "random")


def test_grid_points_is_the_product_with_the_last_name_fastest():
    assert grid_points({"a": [1, 2], "b": ["x", (3, 4)]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": (3, 4)}, {"a": 2, "b": "x"}, {"a": 2, "b": (3, 4)}]


@pytest.mark.parametrize("space, match", [
    ({}, "non-empty dict"),
    ([("a", [1])], "non-empty dict"),
    ({1: [1]}, "names must be strings"),
    ({"a": 3}, r"space\['a'\] must be a non-empty list"),
    ({"a": ()}, r"space\['a'\] must be a non-empty list"),
])
def test_check_space_refuses(space, match):
    with pytest.raises(ValueError, match=match):
        check_space(space)


def test_check_space_keeps_ranges_and_lists_tuples():
    r = tune.Uniform(0, 1)
    assert check_space({"a": (1, 2), "b": r}) == {"a": [1, 2], "b": r}


@pytest.mark.parametrize("lo, hi", [(float("nan"), 1), (0, float("inf")), (True, 2), ("0", 1)])
def test_bounds_must_be_finite_numbers(lo, hi):
    with pytest.raises(ValueError, match="must be a finite number"):
        tune.Uniform(lo, hi)


@pytest.mark.parametrize("k", [0, 1.5, True])
def test_grid_size_must_be_a_positive_int(k):
    with pytest.raises(ValueError, match="k must be a positive int"):
        tune.Uniform(0, 1).grid(k)

