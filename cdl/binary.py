"""Older name of ``cdl.bitops`` (DESIGN.md's contract calls ``cdl.binary.pack_bits``).

The bit operations on packed +-1 values live in ``cdl.bitops``; this module
re-exports the same objects so that both names keep working.
"""
from cdl.bitops import (binary_conv2d, binary_matmul, conv_dots, pack_bits, pack_conv_weights,
                        pack_pixels, padding_correction, unpack_bits)

__all__ = ["pack_bits", "unpack_bits", "binary_matmul", "binary_conv2d", "pack_conv_weights",
           "pack_pixels", "padding_correction", "conv_dots"]
