"""IDX files (MNIST, Fashion-MNIST), raw or gzipped, read with every size checked.

IDX layout: two zero bytes, a type code (0x08 = uint8), the number of
dimensions d, then d big-endian uint32 sizes, then the data. The header is
validated before anything is allocated, and the data must be exactly as
long as the sizes say: a truncated or forged file gives a ValueError, never
a huge allocation or garbage.
"""
import gzip
import os
import struct

import numpy as np

MAX_BYTES = 1 << 31  # no real IDX file comes near this; a forged header asking more is refused
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path):
    """The array stored in an IDX file (``.gz`` is decompressed on the fly)."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _TYPES or head[3] == 0:
                raise ValueError(f"{path}: not an IDX file (bad magic {head!r})")
            dtype, ndim = np.dtype(_TYPES[head[2]]), head[3]
            raw = f.read(4 * ndim)
            if len(raw) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header")
            shape = struct.unpack(f">{ndim}I", raw)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes > MAX_BYTES:
                raise ValueError(f"{path}: header claims shape {shape} ({nbytes} bytes), too large")
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"{path}: truncated: header shape {shape} needs {nbytes} bytes "
                                 f"of data, file has {len(data)}")
            if f.read(1):
                raise ValueError(f"{path}: trailing bytes after the {shape} array")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"{path}: cannot read IDX data ({e})") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(name, path):
    """The folder holding the four files: path, then $CDL_DATA, then Debian's package."""
    tried = [p for p in (path, os.environ.get("CDL_DATA"), DEBIAN_FASHION if name == "fashion"
                         else None) if p]
    for folder in tried:
        if all(os.path.exists(os.path.join(folder, f + ".gz")) or
               os.path.exists(os.path.join(folder, f)) for pair in _FILES.values() for f in pair):
            return folder
    raise FileNotFoundError(
        f"{name}-MNIST IDX files not found (looked in {tried or 'nowhere'}). Install them with "
        f"`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four files "
        f"{', '.join(f + '[.gz]' for pair in _FILES.values() for f in pair)} in a folder and "
        f"pass path=... or set CDL_DATA")


def _load(name, path, normalize, flatten, one_hot_label):
    folder = _find(name, path)
    out = []
    for split in ("train", "test"):
        arrays = []
        for f in _FILES[split]:
            p = os.path.join(folder, f)
            arrays.append(read_idx(p + ".gz" if os.path.exists(p + ".gz") else p))
        images, labels = arrays
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{folder}: {split} images {images.shape} and labels "
                             f"{labels.shape} do not match")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{folder}: {split} labels outside 0..9")
        x = images.astype(np.float32)
        if normalize:
            x /= 255.0
        x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *images.shape[1:])
        t = labels.astype(np.int64)
        out.append((x, np.eye(10, dtype=np.float32)[t] if one_hot_label else t))
    return tuple(out)


def load_fashion_mnist(path=None, normalize=True, flatten=False, one_hot_label=False):
    """((x_train, t_train), (x_test, t_test)) of Fashion-MNIST: 60,000 + 10,000 28x28 images.

    x float32 (N, 1, 28, 28) in [0, 1] (or (N, 784) with flatten), t int64
    labels (or one-hot). Looks in ``path``, then ``$CDL_DATA``, then
    /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist).
    """
    return _load("fashion", path, normalize, flatten, one_hot_label)


def fashion_mnist_available(path=None):
    try:
        _find("fashion", path)
        return True
    except FileNotFoundError:
        return False
