"""CIFAR-10 from its binary distribution (``cifar-10-binary.tar.gz``), never the pickled one.

The binary version (https://www.cs.toronto.edu/~kriz/cifar.html, Krizhevsky
2009) is six files, ``data_batch_1.bin`` ... ``data_batch_5.bin`` (10,000
images each) and ``test_batch.bin``, of 3073-byte records: one label byte
(0..9), then the 32x32 image as 1024 red, 1024 green and 1024 blue bytes,
rows top to bottom. That is already NCHW, so loading is a reshape. Each
file's length is checked to be a whole, non-zero number of records and
every label to be in 0..9 before anything is returned: a truncated or
foreign file gives a ValueError naming it, never shifted pixels. The Python
version (pickles) is refused by design: unpickling a downloaded file can run
arbitrary code.
"""
import os

import numpy as np

RECORD = 1 + 3 * 32 * 32  # label byte + 3072 pixel bytes
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")
_SUBFOLDERS = ("", "cifar-10-batches-bin", "cifar10", "cifar-10")  # the tarball's folder, ours


def read_cifar_batch(path):
    """(images uint8 (N, 3, 32, 32), labels uint8 (N,)) of one CIFAR-10 binary batch file
    at path."""
    try:
        size = os.path.getsize(path)
        if size == 0 or size % RECORD:
            raise ValueError(f"{path}: {size} bytes is not a whole number of CIFAR-10 records "
                             f"({RECORD} bytes each: a label byte and a 3x32x32 image); "
                             f"truncated, or not the binary version")
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read CIFAR-10 data ({e})") from None
    if raw.size != size:  # the file changed under us
        raise ValueError(f"{path}: read {raw.size} bytes of {size}")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0]
    if labels.max() > 9:
        bad = int(np.flatnonzero(labels > 9)[0])
        raise ValueError(f"{path}: record {bad} has label {labels[bad]}, outside 0..9 "
                         f"(not a CIFAR-10 binary batch; CIFAR-100's records are 3074 bytes)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _find(path):
    """The folder holding the six batch files: path (or a subfolder), then $CDL_DATA's."""
    tried = []
    for base in (path, os.environ.get("CDL_DATA")):
        if not base:
            continue
        for sub in _SUBFOLDERS:
            folder = os.path.join(os.fspath(base), sub) if sub else os.fspath(base)
            if all(os.path.isfile(os.path.join(folder, f))
                   for f in (*TRAIN_FILES, TEST_FILE)):
                return folder
        tried.append(os.fspath(base))
    raise FileNotFoundError(
        f"CIFAR-10 binary files not found (looked in {', '.join(tried) or 'nowhere'} and their "
        f"subfolders {', '.join(s for s in _SUBFOLDERS if s)}). Extract cifar-10-binary.tar.gz "
        f"from https://www.cs.toronto.edu/~kriz/cifar.html and pass path=... (or set CDL_DATA) "
        f"to the folder holding {', '.join(TRAIN_FILES)} and {TEST_FILE}")


def load_cifar10(path=None, normalize=True):
    """((x_train, t_train), (x_test, t_test)) of CIFAR-10: 50,000 + 10,000 32x32 RGB images.

    x float32 (N, 3, 32, 32), scaled to [0, 1] with normalize; t int64 labels
    0..9 (names in ``CLASSES``). ``path`` is the folder of the six ``.bin``
    files or one above it (``cifar-10-batches-bin/``, as the tarball
    extracts); without it, ``$CDL_DATA`` is searched the same way.
    """
    folder = _find(path)
    out = []
    for files in (TRAIN_FILES, (TEST_FILE,)):
        parts = [read_cifar_batch(os.path.join(folder, f)) for f in files]
        x = np.empty((sum(len(p[1]) for p in parts), 3, 32, 32), dtype=np.float32)
        i = 0
        for images, _ in parts:  # straight into float32: no uint8 copy of the whole set
            x[i:i + len(images)] = images
            i += len(images)
        if normalize:
            x /= 255.0
        out.append((x, np.concatenate([p[1] for p in parts]).astype(np.int64)))
    return tuple(out)


def cifar10_available(path=None):
    """True when load_cifar10(path) finds its six files."""
    try:
        _find(path)
        return True
    except FileNotFoundError:
        return False
