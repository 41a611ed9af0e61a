"""Mini-batches from arrays in memory or memory-mapped on disk: ``DataLoader``.

    x = np.load("train_x.npy", mmap_mode="r")      # uint8 (N, C, H, W), larger than memory
    t = np.load("train_t.npy", mmap_mode="r")
    loader = DataLoader(x, t, batch_size=128, seed=0, augment=A.HorizontalFlip(),
                        normalize="per_channel")
    Trainer(net, opt, epochs=10).fit(loader, validation_data=(x_val, t_val))

A batch is read, converted, augmented and normalized on its own: only its
rows are read from ``x`` (fancy indexing a ``np.memmap`` touches only their
pages), so the data set never has to fit in memory. Per batch:

1. rows ``idx`` of x and t: the next ``batch_size`` entries of a permutation
   drawn each epoch (``shuffle``), or of 0..N-1;
2. x to ``dtype`` (float32); uint8 storage is scaled by 1/255 to [0, 1], as
   cdl's loaders return images; integer labels to int64;
3. ``augment(x, t, rng)`` (cdl.data.augment transforms), on the [0, 1] data;
4. normalization: ``(x - mean) / std`` per channel (axis 1), with mean and
   std measured over the whole set ("per_channel", streamed in chunks) or given.

Within a batch the rows come in increasing index order, not in the
permutation's order: the batch is the same set of samples (the permutation
decides which samples share a batch, which is all a mean loss sees), and
sorted indices read a memory-mapped file front to back. Results therefore do
not depend on where the array lives.
"""
import numpy as np

from cdl._checks import positive_int

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_CHUNK_VALUES = 1 << 22  # values per chunk when measuring statistics: 32 MB as float64


def channel_stats(x, chunk_values=_CHUNK_VALUES):
    """(mean, std), each (C,) float64, of x (N, C, ...) per channel (axis 1), read in chunks.

    uint8 x is measured on the [0, 1] scale the DataLoader converts it to.
    Chunks of about chunk_values values combine exactly (Chan, Golub & LeVeque
    1979), so a memory-mapped x is read once, a few MB at a time. std is the
    population standard deviation.
    """
    if getattr(x, "ndim", 0) < 2 or not x.size:
        raise ValueError(f"channel_stats: x must be a non-empty (N, C, ...) array, got shape "
                         f"{getattr(x, 'shape', None)}")
    C = x.shape[1]
    count, mean, m2 = 0, np.zeros(C), np.zeros(C)
    rows = max(1, chunk_values // max(1, int(np.prod(x.shape[1:]))))
    for i in range(0, len(x), rows):
        c = np.array(x[i:i + rows], dtype=np.float64)
        if x.dtype == np.uint8:
            c /= 255.0
        c = np.moveaxis(c, 1, 0).reshape(C, -1)
        k = c.shape[1]
        c_mean = c.mean(axis=1)
        c_m2 = ((c - c_mean[:, None]) ** 2).sum(axis=1)
        delta, total = c_mean - mean, count + k
        mean += delta * (k / total)
        m2 += c_m2 + delta ** 2 * (count * k / total)
        count = total
    return mean, np.sqrt(m2 / count)


class DataLoader:
    """Shuffled, augmented, normalized mini-batches ``(xb, tb)`` of (x, t); ``Trainer.fit`` takes it.

    x           (N, ...) array, float or uint8 (scaled to [0, 1]); a ``np.memmap`` (from
                ``np.load(path, mmap_mode="r")``) is read batch by batch
    t           (N,) integer labels or (N, K) float targets, in memory or memory-mapped
    batch_size  samples per batch
    shuffle     draw a new order every epoch (else 0..N-1)
    seed        seeds the shuffling and ``augment``; None lets ``Trainer(seed=...)`` drive
                them (iterated outside a Trainer, None means fresh entropy)
    drop_last   leave out the last batch when it is smaller than batch_size
    augment     optional ``f(x, t, rng) -> (x, t)``, applied to the [0, 1] data before
                normalization (photometric transforms assume that range)
    normalize   None, "per_channel" (mean and std over x per channel, measured once here),
                or (mean, std): numbers or per-channel sequences; ``mean`` and ``std``
                attributes hold the values used ((C,) arrays, or None)
    dtype       float32 or float64, the dtype of the batches

    ``len(loader)`` is the number of batches per epoch; iterating yields one
    epoch of ``(xb, tb)``; ``batches(rng)`` also gives each batch's row indices.
    """

    def __init__(self, x, t, batch_size=100, shuffle=True, seed=None, drop_last=False,
                 augment=None, normalize=None, dtype=np.float32):
        who = "DataLoader"
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{who}: x must be a NumPy array or memmap, got {type(x).__name__}")
        if x.dtype != np.uint8 and x.dtype not in _FLOATS:
            raise ValueError(f"{who}: x must be uint8 (scaled to [0, 1]) or float, got "
                             f"{x.dtype} of shape {x.shape}")
        if x.ndim < 2 or len(x) == 0 or 0 in x.shape[1:]:
            raise ValueError(f"{who}: x must be a non-empty (N, ...) array with N samples, "
                             f"got shape {x.shape}")
        t = t if isinstance(t, np.ndarray) else np.asarray(t)  # keeps a memmap a memmap
        if t.ndim not in (1, 2) or len(t) != len(x):
            raise ValueError(f"{who}: t must be (N,) labels or (N, K) targets for the N = "
                             f"{len(x)} samples of x, got shape {t.shape}")
        if t.dtype.kind not in "iuf":
            raise ValueError(f"{who}: t must hold integer labels or float targets, got {t.dtype}")
        self.x, self.t = x, t
        self.batch_size = positive_int(who, "batch_size", batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        if self.drop_last and len(x) < self.batch_size:
            raise ValueError(f"{who}: drop_last with {len(x)} samples and batch_size "
                             f"{self.batch_size} leaves no batch")
        if augment is not None and not callable(augment):
            raise ValueError(f"{who}: augment must be callable f(x, t, rng) -> (x, t), got "
                             f"{type(augment).__name__}")
        self.augment = augment
        self.dtype = np.dtype(dtype)
        if self.dtype not in _FLOATS[1:]:
            raise ValueError(f"{who}: dtype must be float32 or float64, got {self.dtype}")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.normalize = normalize
        self.mean, self.std = self._statistics(normalize)
        # (1, C, 1, ...) so that mean and std broadcast over a batch per channel
        self._shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)

    def _statistics(self, normalize):
        C = self.x.shape[1]
        if normalize is None:
            return None, None
        if isinstance(normalize, str):
            if normalize != "per_channel":
                raise ValueError(f"DataLoader: normalize must be None, 'per_channel' or "
                                 f"(mean, std), got {normalize!r}")
            mean, std = channel_stats(self.x)
            if not (np.isfinite(mean).all() and np.isfinite(std).all()):
                raise ValueError("DataLoader: x holds NaN or Inf (per-channel statistics are "
                                 "not finite); clean the data")
            # a constant channel (a blank border, a padding feature) is centred, not divided by 0
            return mean, np.where(std > 0, std, 1.0)
        try:
            mean, std = normalize
            mean = np.broadcast_to(np.asarray(mean, dtype=np.float64).reshape(-1), (C,)).copy()
            std = np.broadcast_to(np.asarray(std, dtype=np.float64).reshape(-1), (C,)).copy()
        except (TypeError, ValueError):
            raise ValueError(f"DataLoader: normalize=(mean, std) needs numbers or sequences of "
                             f"{C} (one per channel), got {normalize!r}") from None
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"DataLoader: normalize needs finite means and stds > 0, got "
                             f"{normalize!r}")
        return mean, std

    # -- sizes -----------------------------------------------------------------
    @property
    def num_samples(self):
        """Number of samples in the data set (len(self) counts batches)."""
        return len(self.x)

    def __len__(self):
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    # -- conversion --------------------------------------------------------------
    def _convert(self, xb, tb):
        """Rows read from x and t (xb owned by the caller) as dtype batches."""
        xb = xb.astype(self.dtype, copy=False)
        if self.x.dtype == np.uint8:
            xb /= 255.0
        tb = tb.astype(np.int64) if tb.dtype.kind in "iu" else tb.astype(self.dtype)
        return xb, tb

    def _normalized(self, xb):
        if self.mean is not None:
            xb -= self.mean.astype(xb.dtype).reshape(self._shape)
            xb /= self.std.astype(xb.dtype).reshape(self._shape)
        return xb

    def rows(self, start, stop):
        """(xb, tb): rows start..stop-1 converted and normalized, never augmented (evaluation)."""
        xb = np.array(self.x[start:stop], dtype=self.dtype)  # a copy: never a view of x
        xb, tb = self._convert(xb, np.asarray(self.t[start:stop]))
        return self._normalized(xb), tb

    def like(self, x, t, batch_size=None):
        """A loader over other data (validation, test) with this one's conversion and
        normalization (its mean and std, not the new data's), in order, without augmentation."""
        norm = None if self.mean is None else (self.mean, self.std)
        return DataLoader(x, t, batch_size or self.batch_size, shuffle=False,
                          normalize=norm, dtype=self.dtype)

    # -- iteration ---------------------------------------------------------------
    def batches(self, rng=None):
        """One epoch: an iterator of ``(idx, xb, tb)``, idx the batch's sorted row indices.

        rng draws the order and feeds ``augment`` (default: the loader's own,
        seeded by ``seed``). The order is drawn now, not on the first ``next``.
        """
        rng = self.rng if rng is None else rng
        n, b = len(self.x), self.batch_size
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % b if self.drop_last else n
        return self._epoch(order[:stop], rng)

    def _epoch(self, order, rng):
        for start in range(0, len(order), self.batch_size):
            # sorted: the same samples, read front to back (see the module docstring)
            idx = np.sort(order[start:start + self.batch_size])
            xb, tb = self._convert(np.asarray(self.x[idx]), np.asarray(self.t[idx]))
            if self.augment is not None:
                xb, tb = self.augment(xb, tb, rng)
            yield idx, self._normalized(xb), tb

    def __iter__(self):
        for _, xb, tb in self.batches():
            yield xb, tb

    def __repr__(self):
        norm = self.normalize if isinstance(self.normalize, (str, type(None))) else "(mean, std)"
        return (f"DataLoader({self.x.dtype} {self.x.shape}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed!r}, drop_last={self.drop_last}, "
                f"augment={self.augment!r}, normalize={norm!r})")


__all__ = ["DataLoader", "channel_stats"]
