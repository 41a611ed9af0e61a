"""cdl.data.erasing: Cutout and RandomErasing boxes, and the box check the kernels rely on."""
import numpy as np
import pytest

from cdl.data import augment as A

from .test_augment import images


def test_cutout_erases_at_most_a_square(rng):
    x = images(rng, (300, 2, 10, 10))
    y, _ = A.Cutout(4)(x, None, rng)
    zeros = (y == 0).all(axis=1).sum(axis=(1, 2))
    assert zeros.max() == 16 and zeros.min() >= 4  # a centre on the border keeps a 2x2 quarter
    assert ((y == 0) | (y == x)).all()



def test_random_erasing_box_sizes(rng):
    x = images(rng, (300, 1, 20, 20))
    y, _ = A.RandomErasing(scale=(0.1, 0.2), ratio=(1, 1), p=1.0, value=-1.0)(x, None, rng)
    area = (y == -1).sum(axis=(1, 2, 3)) / 400
    assert area.min() >= 0.08 and area.max() <= 0.23
    y, _ = A.RandomErasing(p=1.0, value="random")(x, None, rng)
    changed = (y != x).any(axis=1)
    assert changed.any(axis=(1, 2)).mean() > 0.95



@pytest.mark.parametrize("boxes", [[[0, 7, 0, 1]], [[-1, 2, 0, 1]], [[3, 2, 0, 1]], [[0, 1, 0, 6]]])
def test_check_boxes_refuses_boxes_outside(boxes):
    with pytest.raises(ValueError, match="boxes must satisfy"):
        A.check_boxes("test", np.array(boxes), (1, 1, 6, 5))
