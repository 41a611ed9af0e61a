"""Saving files atomically and durably, as ``Sequential.save`` does.

Writing (``atomic_savez``, ``atomic_write``) goes to a temporary file next to the target,
created with the mode a plain ``open()`` would give (0o666 minus the umask;
an existing target keeps its mode), fsynced, renamed over the target, and
the folder fsynced. A symbolic link is written through, not replaced. The
temporary file is removed on any exception, KeyboardInterrupt included;
a process killed outright (SIGKILL, power loss) cannot clean up, so its
temporary file, named ``.<name>.cdl-<pid>-<random>.tmp``, is removed by the
next save to the same target once process <pid> no longer exists.
"""
import contextlib
import errno
import os
import re
import secrets
import stat

import numpy as np


def _temp_pattern(name):
    return re.compile(r"\." + re.escape(name) + r"\.cdl-(\d+)-[0-9a-f]{8}\.tmp\Z")


def _alive(pid):
    if pid == os.getpid() or os.name != "posix":  # os.kill(pid, 0) would signal on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, someone else's
        return True
    return True


def remove_stale_temps(folder, name):
    """Remove temporary files of saves to folder/name by processes that no longer exist."""
    pattern = _temp_pattern(name)
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))


def _fsync_folder(folder):
    """Make a rename in folder durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _save_error(who, path, e):
    return OSError(e.errno, f"{who}: cannot write {os.fspath(path)}: {e.strerror}")


def atomic_savez(path, arrays, who="save"):
    """np.savez(path, **arrays), atomically and durably (see the module docstring)."""
    atomic_write(path, lambda f: np.savez(f, **arrays), who)


def atomic_write(path, write, who="save"):
    """write(f) on a binary file that replaces path once complete (see the module docstring)."""
    target = os.path.realpath(os.fspath(path))  # write through a symbolic link
    folder, name = os.path.split(target)
    remove_stale_temps(folder, name)
    tmp = os.path.join(folder, f".{name}.cdl-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask, as open() does
    except OSError as e:
        raise _save_error(who, path, e) from None
    f = None
    try:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = None
        if mode is not None and hasattr(os, "fchmod"):
            with contextlib.suppress(PermissionError):  # not ours to chmod: default mode
                os.fchmod(fd, mode)
        f = os.fdopen(fd, "wb")
        write(f)
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, target)
    except BaseException as e:
        if f is None:
            os.close(fd)
        else:
            f.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None:
            raise _save_error(who, path, e) from e
        raise
    _fsync_folder(folder)


def check_save_path(path):
    """ValueError unless a model can be saved to path: its folder exists and is writable."""
    target = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(target)
    if os.path.isdir(target):
        raise ValueError(f"cannot save to {path}: it is a folder")
    if not os.path.isdir(folder):
        raise ValueError(f"cannot save to {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot save to {path}: folder {folder} is not writable")
