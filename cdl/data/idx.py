"""IDX files (MNIST, Fashion-MNIST), raw or gzipped, read with every size checked.

IDX layout: two zero bytes, a type code (0x08 = uint8), the number of
dimensions d, then d big-endian uint32 sizes, then the data. The header is
validated before anything is allocated, and the data must be exactly as
long as the sizes say: a truncated or forged file gives a ValueError, never
a huge allocation or garbage.
"""
import gzip
import math
import os
import struct
import zlib

import numpy as np

MAX_BYTES = 1 << 31  # no real IDX file comes near this; a forged header asking more is refused
_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_at_most(f, n, chunk=1 << 24):
    """Up to n bytes of f, read in chunks: f.read(n) allocates n bytes before reading, so a
    100-byte file whose header claims 2 GB would cost 2 GB."""
    parts = []
    while n > 0:
        part = f.read(min(n, chunk))
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def read_idx(path):
    """The array stored in the IDX file at path (``.gz`` is decompressed on the fly)."""
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
            # Python ints: np.prod in int64 wraps (65536 ** 4 gives 0) and lets the header pass
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > MAX_BYTES:
                raise ValueError(f"{path}: header claims shape {shape} ({nbytes} bytes), too large")
            data = _read_at_most(f, nbytes)
            if len(data) != nbytes:
                raise ValueError(f"{path}: truncated: header shape {shape} needs {nbytes} bytes "
                                 f"of data, file has {len(data)}")
            if f.read(1):
                raise ValueError(f"{path}: trailing bytes after the {shape} array")
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot read IDX data ({e})") from None
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


# known system folders, read at call time (tests point them elsewhere). No Debian package ships
# MNIST; /usr/share/datasets/<name> is where dataset packages put their files.
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
DEBIAN_MNIST = "/usr/share/datasets/mnist"
_NAMES = {"fashion": ("Fashion-MNIST", "fashion-mnist"), "mnist": ("MNIST", "mnist")}


def _candidates(name, path):
    """Folders to search, in order: path, $CDL_DATA/<name>, $CDL_DATA, the system folder."""
    env = os.environ.get("CDL_DATA")
    system = DEBIAN_FASHION if name == "fashion" else DEBIAN_MNIST
    folders = [path, env and os.path.join(env, _NAMES[name][1]), env, system]
    return [os.fspath(f) for f in folders if f]


def _missing(folder):
    """The IDX files (as "name[.gz]") that folder lacks."""
    return [f + "[.gz]" for pair in _FILES.values() for f in pair
            if not (os.path.exists(os.path.join(folder, f + ".gz"))
                    or os.path.exists(os.path.join(folder, f)))]


def _find(name, path):
    """The folder holding the four IDX files of data set ``name`` ("fashion" or "mnist")."""
    title, sub = _NAMES[name]
    tried = []
    for folder in _candidates(name, path):
        if not os.path.isdir(folder):
            tried.append(f"{folder} (no such folder)")
            continue
        lacks = _missing(folder)
        if not lacks:
            return folder
        tried.append(f"{folder} (lacks {', '.join(lacks)})")
    files = ", ".join(f + "[.gz]" for pair in _FILES.values() for f in pair)
    get = ("Install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put "
           if name == "fashion" else "Put ")
    raise FileNotFoundError(
        f"{title} IDX files not found (looked in {'; '.join(tried) or 'nowhere'}). {get}"
        f"the four files {files} in a folder and pass path=..., or put them in "
        f"$CDL_DATA/{sub} (or $CDL_DATA itself) and set CDL_DATA")


def _load(name, path, normalize, flatten, one_hot_label):
    folder = _find(name, path)
    out = []
    for split in ("train", "test"):
        paths = []
        for f in _FILES[split]:
            p = os.path.join(folder, f)
            paths.append(p + ".gz" if os.path.exists(p + ".gz") else p)
        images, labels = (read_idx(p) for p in paths)
        # IDX can hold any type and rank: anything but uint8 (N, H, W) / (N,) would be
        # scaled wrongly below, so it is refused by name
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"{paths[0]}: expected uint8 images (N, H, W), got "
                             f"{images.dtype} of shape {images.shape}")
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(f"{paths[1]}: expected uint8 labels (N,), got {labels.dtype} "
                             f"of shape {labels.shape}")
        if len(images) != len(labels) or not len(images):
            raise ValueError(f"{folder}: {len(images)} {split} images and {len(labels)} "
                             f"labels ({paths[0]}, {paths[1]})")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{paths[1]}: labels outside 0..9 (max {labels.max()})")
        x = images.astype(np.float32)
        if normalize:
            x /= 255.0
        x = x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *images.shape[1:])
        t = labels.astype(np.int64)
        out.append((x, np.eye(10, dtype=np.float32)[t] if one_hot_label else t))
    return tuple(out)


def load_fashion_mnist(path=None, normalize=True, flatten=False, one_hot_label=False):
    """((x_train, t_train), (x_test, t_test)) of Fashion-MNIST: 60,000 + 10,000 28x28 images.

    x float32 (N, 1, 28, 28) in [0, 1] (or (N, 784) with flatten; 0..255 with
    normalize=False), t int64 labels (or float32 one-hot rows with
    one_hot_label). Looks in ``path``, then ``$CDL_DATA/fashion-mnist``,
    then ``$CDL_DATA``, then /usr/share/datasets/fashion-mnist (Debian's
    dataset-fashion-mnist).
    """
    return _load("fashion", path, normalize, flatten, one_hot_label)


def load_mnist(path=None, normalize=True, flatten=False, one_hot_label=False):
    """((x_train, t_train), (x_test, t_test)) of MNIST (LeCun et al. 1998): 60,000 + 10,000.

    The same IDX files, reader and layout as ``load_fashion_mnist``: x float32
    (N, 1, 28, 28) in [0, 1], t int64 labels; normalize, flatten and
    one_hot_label as there. Looks in ``path``, then
    ``$CDL_DATA/mnist``, then ``$CDL_DATA``, then /usr/share/datasets/mnist
    (no Debian package ships MNIST: put the four files there or anywhere).
    """
    return _load("mnist", path, normalize, flatten, one_hot_label)


def fashion_mnist_available(path=None):
    """True when load_fashion_mnist(path) finds its four files."""
    return _available("fashion", path)


def mnist_available(path=None):
    """True when load_mnist(path) finds its four files."""
    return _available("mnist", path)


def _available(name, path):
    try:
        _find(name, path)
        return True
    except FileNotFoundError:
        return False
