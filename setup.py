"""Builds the Cython extension cdl._im2col; everything else is in pyproject.toml."""
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

# Portable flags only: no -march=native (a wheel built so dies with an illegal instruction
# on an older CPU), and no OpenMP: the loops are serial and cdl runs slices of the batch
# on its own worker threads, so a wheel bundles no second OpenMP runtime beside Numba's.
# gcc turns every short zeroing loop of im2col (a pad row, one wrapped column) into a
# call to memset, which costs more than the few stores it replaces (1.5x slower on 8x8).
no_memset = ["-fno-tree-loop-distribute-patterns"] if sys.platform.startswith("linux") else []

ext = Extension(
    "cdl._im2col",
    ["csrc/im2col.pyx"],
    extra_compile_args=["-O3", *no_memset],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)
setup(ext_modules=cythonize([ext], language_level=3))
