"""cdl.binary: the older name of cdl.bitops keeps working (DESIGN.md's contract)."""
import numpy as np

import cdl
from cdl import binary, bitops


def test_binary_reexports_every_public_bit_operation():
    assert binary.__all__ == bitops.__all__
    for name in bitops.__all__:
        assert getattr(binary, name) is getattr(bitops, name), name


def test_contract_names_work_through_the_old_module():
    x = np.array([[1.0, -2.0, 0.0, 3.0], [-1.0, -1.0, 2.0, 2.0]])
    p = cdl.binary.pack_bits(x)
    assert p.dtype == np.uint64 and p.shape == (2, 1)
    out = cdl.binary.binary_matmul(p, p, 4)
    signs = np.where(x >= 0, 1, -1)
    np.testing.assert_array_equal(out, signs @ signs.T)
