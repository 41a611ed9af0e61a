"""Choice of a CPU algorithm by measurement, cached in memory and on disk.

Several CPU kernels compute one thing in several ways whose speed depends on
the machine: the convolution algorithms of ``cdl.kernels.conv`` and the
binary GEMM variants of ``cdl.kernels.binary``. Each has a documented
heuristic; with the policy "measure" (the default) the first call for a
given key (operation, dtype, shapes, thread count) times the candidates on
the caller's own arrays and keeps the fastest, as cuDNN's and oneDNN's
benchmark modes do. ``set_policy("heuristic")`` (or CDL_ALGO_POLICY=heuristic
in the environment) turns measuring off.

What is timed (``decide``)
    Only the candidates whose compiled code exists already: in this process
    or in Numba's on-disk cache (``compiled``). A cold compile costs seconds
    per kernel and dtype, against milliseconds to load a cached one, so
    tuning never compiles a kernel that the heuristic would not run
    anyway: the heuristic's pick is always a candidate, the others join once
    something else has compiled them (another layer, a forced run, or the
    second process of cdl.kernels.ahead, which cdl.kernels.conv waits for
    before it lets the tuner decide). Calls too small to be worth timing (the
    caller's ``tiny`` reason: a conv under about 2 MFLOP) keep the heuristic's
    pick.

    One warm-up call per candidate (the heuristic's first), then up to
    ``_REPEAT`` timed rounds, round-robin (from the second on, only the
    candidates within twice the best timed run), while the time spent after
    the heuristic's warm-up stays within ``max(_BUDGET_S, _BUDGET_CALLS * t)``,
    t the heuristic's timed call (no call starts that would end past it by
    its expected time; a candidate that gets no warm-up so is skipped, "over
    budget"). The fastest timed run of each candidate counts (its warm-up,
    which includes loading its code, where none fitted), and the fastest
    candidate wins unless the heuristic's pick is within ``_MARGIN`` of it:
    on a busy machine closer figures are noise, and the documented default
    is the safer bet.

The cache (on disk: cdl.kernels.tuner_cache)
    In memory: key -> ``Decision``, for the process. On disk: the measured
    decisions in ``cache_path()``, a JSON file in ``cache_dir()``
    ($CDL_CACHE_DIR, else $XDG_CACHE_HOME/cdl, else ~/.cache/cdl) named by
    cdl's version and a hash of Numba's version and the CPU (model, LLVM's CPU
    name and any NUMBA_CPU_NAME / NUMBA_CPU_FEATURES), so that machines sharing
    a home folder keep a file each; the file's header repeats them::

        {"format": 1, "cdl": "0.1.0", "numba": "0.68.1", "cpu": "...",
         "entries": {"conv2d_forward float32 100x16x14x14 32x16x3x3 1x1 1x1 2":
                     {"choice": "winograd", "ms": {"winograd": 0.62, "gemm": 0.91},
                      "skipped": {"direct": "not compiled"}}}}

    A file that does not parse, or whose header names another version or
    CPU, is ignored with a ``TuningWarning`` and rewritten. An entry is
    reused while its choice still applies and no candidate it skipped as
    "not compiled" has been compiled since (then that key is measured again).
    Writes merge with what is on disk and replace the file atomically
    (cdl._atomic); a folder that cannot be written leaves the cache in
    memory, with one warning per process.

One lock serializes deciding: two threads that meet the same new key time
it once, and timings never overlap within a process.
"""
import contextlib
import os
import threading
import time
import warnings
from dataclasses import dataclass, field

import numba
import numpy as np

from cdl.kernels import tuner_cache as _file
from cdl.kernels.tuner_cache import TuningWarning, cache_dir, cache_path, cpu_key

__all__ = ["POLICIES", "TuningWarning", "Decision", "set_policy", "get_policy", "cache_dir",
           "cpu_key", "cache_path", "reset", "Forced", "cached", "key_text", "compiled",
           "decide"]

POLICIES = ("measure", "heuristic")

_BUDGET_S = 0.25    # seconds of timing per decision (forward and backward are one each)
_BUDGET_CALLS = 4   # ... or this many calls of the heuristic's pick, if that is more
_REPEAT = 3         # timed rounds at most
_MARGIN = 0.05      # the heuristic's pick stays unless another is this much faster


@dataclass(frozen=True)
class Decision:
    """What a key got and why: source is "measured", "cached" (measured by an earlier run),
    "tiny", "only" (no other candidate compiled) or "policy"; ms the times of the measured
    candidates; skipped the candidates not timed and why."""
    choice: str
    source: str
    ms: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    note: str = ""

    @property
    def why(self):
        """One line, e.g. "measured: winograd 0.62 ms vs gemm 0.91 ms"."""
        if self.source in ("measured", "cached"):
            others = sorted((t, c) for c, t in self.ms.items() if c != self.choice)
            text = f"{self.choice} {self.ms[self.choice]:.3g} ms"
            if others:
                text += " vs " + ", ".join(f"{c} {t:.3g} ms" for t, c in others)
            if others and others[0][0] < self.ms[self.choice]:
                text += f" (the heuristic's pick: within {_MARGIN:.0%} of the fastest)"
            if self.skipped:
                text += "; not timed: " + ", ".join(f"{c} ({r})" for c, r in self.skipped.items())
            return f"{self.source}: {text}"
        if self.source == "only":
            return (f"heuristic: {self.choice}, the only candidate compiled (not compiled: "
                    f"{', '.join(self.skipped)})")
        return f"heuristic: {self.note or self.source}"


# -- policy ---------------------------------------------------------------------------

def _initial_policy():
    policy = os.environ.get("CDL_ALGO_POLICY", "measure")
    if policy not in POLICIES:
        warnings.warn(f"CDL_ALGO_POLICY={policy!r} is not one of {POLICIES}; using 'measure'",
                      TuningWarning, stacklevel=2)
        policy = "measure"
    return policy


_policy = _initial_policy()


def set_policy(policy):
    """"measure": choose CPU algorithms by timing them (cached); "heuristic": by the
    documented rules, never timing. Process-wide; returns the previous policy."""
    global _policy
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    before, _policy = _policy, policy
    return before


def get_policy():
    """The current policy, "measure" or "heuristic"."""
    return _policy


# -- state ----------------------------------------------------------------------------

_lock = threading.RLock()
_memory = {}          # key tuple -> Decision


def _after_fork_in_child():
    """A child forked while another thread was tuning would find the lock held forever."""
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reset(disk=False):
    """Forget every decision of this process (and delete the cache file when disk)."""
    with _lock:
        _memory.clear()
        _file.forget(delete=disk)


class Forced(threading.local):
    """A choice forced in this thread for the length of a block (conv's forced_algorithm,
    the binary GEMM's forced_variant): ``value``, None where nothing is forced."""
    value = None

    @contextlib.contextmanager
    def holding(self, value):
        """Within the block, ``value`` is value in this thread (None: not forced); blocks nest."""
        before, self.value = self.value, value
        try:
            yield value
        finally:
            self.value = before


def cached(key):
    """The Decision for key already made in this process, or None (no lock: a dict read)."""
    return _memory.get(key)


def key_text(key):
    """The on-disk name of a key tuple: its parts space-separated, tuples as AxB."""
    return " ".join("x".join(map(str, p)) if isinstance(p, tuple) else str(p) for p in key)


# -- compiled code --------------------------------------------------------------------

def compiled(dispatchers, dtype):
    """Whether every Numba dispatcher has machine code whose first argument is an array of
    dtype, in this process or in Numba's on-disk cache (calling it then compiles nothing).
    Unknown (a Numba whose cache internals differ): False."""
    nb_dtype = numba.from_dtype(np.dtype(dtype))

    def fits(sig):
        return len(sig) > 0 and getattr(sig[0], "dtype", None) == nb_dtype

    for d in dispatchers:
        if any(fits(s) for s in d.signatures):
            continue
        try:
            # Numba's index: {(signature, codegen magic tuple, code hashes): file}, {} when
            # the source changed since (numba.core.caching.IndexDataCacheFile).
            magic = d.targetctx.codegen().magic_tuple()
            index = d._cache._cache_file._load_index()
            if not any(fits(k[0]) and k[1] == magic for k in index):
                return False
        except Exception:  # noqa: BLE001 (no cache, or other internals: assume a compile)
            return False
    return True


# -- deciding -------------------------------------------------------------------------

_clock = time.perf_counter


def _time_call(run, candidate):
    """Seconds one run(candidate) takes (tests replace this to fake the timings)."""
    t0 = _clock()
    run(candidate)
    return _clock() - t0


def _reusable(entry, candidates, ready):
    choice = entry.get("choice")
    ms, skipped = entry.get("ms"), entry.get("skipped", {})
    if (choice not in candidates or not isinstance(ms, dict) or choice not in ms
            or not isinstance(skipped, dict)
            or not all(isinstance(t, (int, float)) for t in ms.values())):
        return False
    for c in candidates:
        if c in ms:
            continue
        if c not in skipped or (skipped[c] == "not compiled" and ready(c)):
            return False
    return True


def decide(key, candidates, heuristic, run, tiny=None, ready=None):
    """The Decision for key: from memory, else from disk, else by timing run(c) for the
    candidates (see the module docstring); stored in memory (and on disk when measured).

    candidates: the applicable choices, heuristic (one of them) the documented rule's pick,
    run(c) computes the call with c on the caller's arrays, tiny a reason not to time (or
    None), ready(c) whether c's code is compiled (default: always).
    """
    d = _memory.get(key)
    if d is not None:
        return d
    ready = ready or (lambda c: True)
    with _lock:
        d = _memory.get(key)
        if d is None:
            d = _decide(key, list(candidates), heuristic, run, tiny, ready)
            _memory[key] = d
    return d


def _decide(key, candidates, heuristic, run, tiny, ready):
    if tiny:
        return Decision(heuristic, "tiny", note=tiny)
    path, text = cache_path(), key_text(key)
    entry = _file.entries(path).get(text)
    if entry is not None and _reusable(entry, candidates, ready):
        return Decision(entry["choice"], "cached", dict(entry["ms"]),
                        dict(entry.get("skipped", {})))
    order = [heuristic] + [c for c in candidates if c != heuristic]
    skipped = {c: "not compiled" for c in order[1:] if not ready(c)}
    order = [c for c in order if c not in skipped]
    if len(order) == 1:
        return Decision(heuristic, "only", skipped=skipped)
    ms = _measure(order, run, skipped)
    choice = min(ms, key=ms.get)
    if ms[heuristic] <= (1 + _MARGIN) * ms[choice]:
        choice = heuristic
    _file.write(path, text, {"choice": choice, "ms": ms, "skipped": skipped})
    return Decision(choice, "measured", ms, skipped)


def _measure(order, run, skipped):
    """{candidate: ms}: a warm-up call each, then timed rounds within the budget."""
    # The heuristic's first call pays what any first call pays (Numba's start, cdl's
    # threads: 0.5 s in a fresh process); the caller would pay it anyway, so the budget
    # starts after it and scales with its second call.
    _time_call(run, order[0])
    start = _clock()
    first = {order[0]: _time_call(run, order[0])}
    budget = max(_BUDGET_S, _BUDGET_CALLS * first[order[0]])
    for c in order[1:]:
        if _clock() - start + first[order[0]] > budget:
            skipped[c] = "over budget"
        else:
            first[c] = _time_call(run, c)  # includes loading its code: a rough figure
    timed = {c: [] for c in first}
    timed[order[0]].append(first[order[0]])
    for c in [c for _ in range(_REPEAT) for c in first][1:]:  # round-robin
        best = {k: min(ts) for k, ts in timed.items() if ts}
        if c in best and best[c] > 2 * min(best.values()):
            continue  # a clear loser drops out (by a timed run: warm-ups include loading)
        if _clock() - start + best.get(c, first[c]) > budget:
            break
        timed[c].append(_time_call(run, c))
    return {c: round(1e3 * min(timed[c], default=first[c]), 4) for c in first}
