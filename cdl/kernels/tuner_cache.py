"""The tuner's cache on disk: where it lives, and reading and writing it safely.

One JSON file per cdl version, Numba version and CPU (``cache_path()`` in
``cache_dir()``; the format is in cdl.kernels.tuner's docstring). ``entries``
reads it once per process (a corrupt or stale file is ignored with one
``TuningWarning``), ``write`` merges an entry into it atomically (a folder
that cannot be written keeps the entries in memory, with one warning), and
``forget`` drops what this process read. cdl.kernels.tuner calls these under
its lock.
"""
import hashlib
import json
import os
import platform
import warnings

import numba

_FORMAT = 1

_disk = {}            # path -> {entry text: entry dict} as read (or written) by this process
_unwritable = set()   # paths whose write failed (warned once)
_warned = set()       # (path, reason) already warned about


class TuningWarning(RuntimeWarning):
    """The tuning cache on disk was unusable (corrupt, stale, unwritable)."""


def cache_dir():
    """$CDL_CACHE_DIR, else $XDG_CACHE_HOME/cdl, else ~/.cache/cdl (read at every call)."""
    explicit = os.environ.get("CDL_CACHE_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "cdl")


_cpu = None


def cpu_key():
    """The CPU as the cache knows it: model name, LLVM's CPU name, Numba's overrides."""
    global _cpu
    if _cpu is None:
        model = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass  # no /proc (not Linux): platform's name stands
        from llvmlite import binding
        from numba.core import config
        parts = [model, binding.get_host_cpu_name()]
        parts += [f"{k}={v}" for k, v in (("NUMBA_CPU_NAME", config.CPU_NAME),
                                          ("NUMBA_CPU_FEATURES", config.CPU_FEATURES)) if v]
        _cpu = " | ".join(parts)
    return _cpu


def versions():
    """What a cache file is valid for: cdl's and Numba's versions and the CPU."""
    from cdl import __version__
    return {"cdl": __version__, "numba": numba.__version__, "cpu": cpu_key()}


def cache_path():
    """The JSON file of this cdl version, Numba version and CPU in cache_dir()."""
    v = versions()
    digest = hashlib.sha1("\n".join((v["numba"], v["cpu"])).encode()).hexdigest()[:10]
    return os.path.join(cache_dir(), f"tuning-{v['cdl']}-{digest}.json")


def forget(delete=False):
    """Drop what this process read or failed to write (and delete the cache file when
    delete)."""
    _disk.clear()
    _unwritable.clear()
    _warned.clear()
    if delete:
        try:
            os.unlink(cache_path())
        except OSError:
            pass  # absent (or not ours to delete): best effort, like the writes


def _warn(path, reason, message):
    if (path, reason) not in _warned:
        _warned.add((path, reason))
        warnings.warn(message, TuningWarning, stacklevel=4)


def read(path, quiet=False):
    """The entries of the file at path ({} if absent, unreadable, corrupt or stale)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as e:
        if not quiet:
            _warn(path, "corrupt", f"cdl tuning cache {path} is unreadable ({e}); "
                  f"ignored, it will be rewritten")
        return {}
    header = {k: data.get(k) for k in ("cdl", "numba", "cpu")} if isinstance(data, dict) else {}
    entries = data.get("entries") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("format") != _FORMAT
            or not isinstance(entries, dict)
            or not all(isinstance(e, dict) for e in entries.values())):
        if not quiet:
            _warn(path, "corrupt", f"cdl tuning cache {path} is not a cdl tuning file; "
                  f"ignored, it will be rewritten")
        return {}
    if header != versions():
        if not quiet:
            _warn(path, "stale", f"cdl tuning cache {path} was written by another cdl, Numba "
                  f"or CPU ({header}); ignored, it will be rewritten")
        return {}
    return entries


def entries(path):
    """{entry text: entry} of the cache file at path, read once per process (then held)."""
    if path not in _disk:
        _disk[path] = read(path)
    return _disk[path]


def write(path, text, entry):
    """Merge one entry into the file at path, atomically; warn once if it cannot be written."""
    held = entries(path)
    held[text] = entry
    if path in _unwritable:
        return
    from cdl._atomic import atomic_write
    merged = {**read(path, quiet=True), **held}
    payload = {"format": _FORMAT, **versions(), "entries": merged}
    data = json.dumps(payload, indent=1, sort_keys=True).encode()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, lambda f: f.write(data), who="cdl tuning cache")
    except OSError as e:
        _unwritable.add(path)
        _warn(path, "unwritable", f"cdl tuning cache {path} cannot be written ({e}); choices "
              f"stay in memory for this process (set CDL_CACHE_DIR to a writable folder)")
        return
    _disk[path] = merged
