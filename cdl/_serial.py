"""Model files without trust: what ``cdl.load`` checks before it allocates anything.

A model file is a zip of ``.npy`` members, as ``np.savez`` writes it: the
architecture as UTF-8 JSON in ``__arch__`` (uint8) and one float32 or
float64 array per parameter ("params/0.W") and buffer
("buffers/3.running_var"). Reading never unpickles (object arrays are
refused from their header, and no member is read with ``allow_pickle``).

Reading happens in this order, so that a forged file costs milliseconds and
no memory: ``ModelFile`` reads the zip's central directory and each member's
npy header only (dtype, shape, and the member's declared size, which must
agree with them and with the size of the file); ``parse_json`` reads the
architecture with bounded size and nesting; ``declared_state`` works out
from the JSON alone which arrays, of which shapes, the architecture needs.
The loader compares the two before it builds a layer or inflates an array.

Saving is in ``cdl._atomic``.
"""
import json
import math
import os
import re
import zipfile
from collections import namedtuple

import numpy as np

MAX_MEMBERS = 1 << 16           # arrays in one file; real models have hundreds
MAX_ARCH_BYTES = 1 << 20        # architecture JSON; a ResNet's is under 3 KB
MAX_JSON_DEPTH = 128            # JSON nesting (3 levels per nested layer)
MAX_LAYER_DEPTH = 32            # containers inside containers
MAX_LAYERS = 1 << 16            # layers in all, containers' children included
MAX_INFLATION = 16              # deflated members: cdl writes stored ones, and float
#                                 weights do not compress beyond ~1.2x, so more is a bomb
MODEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # of parameters and buffers


# -- reading: zip directory and npy headers ----------------------------------------------

Member = namedtuple("Member", "info dtype shape fortran offset nbytes")


class ModelFile:
    """An open model file whose members' dtypes and shapes are known, no data read yet.

    Opening a missing file raises FileNotFoundError (other OSErrors likewise);
    anything wrong with the content raises ValueError. ``members`` maps
    "__arch__", "params/0.W", ... to a ``Member``; ``read(name)`` inflates one.
    """

    def __init__(self, path):
        self._f = open(path, "rb")
        try:
            self._zip, self.members = _directory(self._f)
        except BaseException:
            self._f.close()
            raise

    def read(self, name):
        """The array of member name, checked against its header and its CRC."""
        m = self.members[name]
        try:
            with self._zip.open(m.info) as fp:
                fp.read(m.offset)
                data = fp.read(m.nbytes)
                if len(data) != m.nbytes or fp.read(1):
                    raise ValueError("data size differs from its header")
        except ValueError as e:
            raise ValueError(f"member {name}: {e}") from None
        except Exception as e:  # zipfile.BadZipFile (CRC), zlib.error, EOFError
            raise ValueError(f"member {name}: {type(e).__name__}: {e}") from None
        return np.frombuffer(data, dtype=m.dtype).reshape(m.shape,
                                                           order="F" if m.fortran else "C")

    def close(self):
        self._zip.close()
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _directory(f):
    """(ZipFile, {name: Member}) from the central directory and the npy headers alone."""
    size = os.fstat(f.fileno()).st_size
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
    except Exception as e:  # BadZipFile, struct.error, OverflowError, ... on damaged input
        raise ValueError(f"not a zip archive ({type(e).__name__}: {e})") from None
    if len(infos) > MAX_MEMBERS:
        raise ValueError(f"{len(infos)} members (at most {MAX_MEMBERS})")
    if sum(i.compress_size for i in infos) > size:
        raise ValueError(f"members declare more bytes than the file's {size}")
    members = {}
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            raise ValueError(f"member {name!r:.80} is not an .npy array")
        key = name[:-4]
        if key in members:
            raise ValueError(f"member {key!r:.80} appears twice")
        if info.flag_bits & 0x1:
            raise ValueError(f"member {key!r:.80} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.compress_size != info.file_size:
                raise ValueError(f"member {key!r:.80}: stored, yet {info.compress_size} bytes "
                                 f"declare {info.file_size}")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > MAX_INFLATION * info.compress_size + (1 << 16):
                raise ValueError(f"member {key!r:.80}: {info.compress_size} compressed bytes "
                                 f"declare {info.file_size} (a zip bomb?)")
        else:
            raise ValueError(f"member {key!r:.80}: unsupported compression "
                             f"{info.compress_type}")
        if info.header_offset + info.compress_size > size:
            raise ValueError(f"member {key!r:.80} runs past the end of the file "
                             f"(truncated?)")
        members[key] = _header(zf, info, key)
    return zf, members


def _header(zf, info, key):
    """The Member of info from its npy header (a few hundred bytes inflated at most)."""
    fmt = np.lib.format
    try:
        with zf.open(info) as fp:
            version = fmt.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported npy version {version}")
            offset = fp.tell()
    except ValueError as e:
        raise ValueError(f"member {key!r:.80} has no valid npy header ({e})") from None
    except Exception as e:  # BadZipFile, EOFError, zlib.error, SyntaxError, ...
        raise ValueError(f"member {key!r:.80} has no valid npy header "
                         f"({type(e).__name__}: {e})") from None
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
        raise ValueError(f"member {key!r:.80} has dtype {dtype}, which cdl never stores")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != offset + nbytes:
        raise ValueError(f"member {key!r:.80} declares {info.file_size} bytes, but its header "
                         f"says {dtype} {shape}: {offset + nbytes} bytes")
    return Member(info, dtype, tuple(shape), bool(fortran), offset, nbytes)


# -- reading: bounded JSON ---------------------------------------------------------------

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def parse_json(raw, what="architecture"):
    """The JSON value of raw (bytes), at most MAX_ARCH_BYTES long and MAX_JSON_DEPTH deep;
    ``what`` names the record in error messages."""
    if len(raw) > MAX_ARCH_BYTES:
        raise ValueError(f"{what} of {len(raw)} bytes (at most {MAX_ARCH_BYTES})")
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    # nesting measured before parsing, as json recurses once per level
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    b = np.frombuffer(brackets, dtype=np.uint8)
    depth = int(np.cumsum(np.where((b == ord("[")) | (b == ord("{")), 1, -1)).max(initial=0))
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{what} JSON nests {depth} levels deep "
                         f"(at most {MAX_JSON_DEPTH})")

    def constant(name):
        raise ValueError(f"{what} JSON holds {name}")
    try:
        return json.loads(text, parse_constant=constant)
    except RecursionError:
        raise ValueError(f"{what} JSON nests too deep") from None


def read_json(mf, name, what):
    """The JSON value of mf's member name (1-D uint8, UTF-8), its size checked before it is
    read; ``what`` names the record in error messages."""
    m = mf.members.get(name)
    if m is None or m.dtype != np.uint8 or len(m.shape) != 1:
        raise ValueError(f"no {what} record")
    if m.nbytes > MAX_ARCH_BYTES:
        raise ValueError(f"{what} of {m.nbytes} bytes (at most {MAX_ARCH_BYTES})")
    return parse_json(mf.read(name).tobytes(), what)


# -- the state an architecture declares ------------------------------------------------

_SIZE_MAX = 2**31 - 1  # layer sizes reach compiled loops as C ints


def _int(where, cfg, key, default=None, minimum=1):
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{where}: {key} must be an int >= {minimum}, got {v!r:.40}")
    if v > _SIZE_MAX:
        raise ValueError(f"{where}: {key} = {v} exceeds {_SIZE_MAX}")
    return v


def _pair(where, cfg, key, default=None, minimum=1):
    v = cfg.get(key, default)
    if isinstance(v, list) and len(v) == 2:
        return tuple(_int(where, {key: e}, key, minimum=minimum) for e in v)
    return (_int(where, cfg, key, default, minimum),) * 2


def _flag(where, cfg, key, default):
    v = cfg.get(key, default)
    if not isinstance(v, bool):
        raise ValueError(f"{where}: {key} must be true or false, got {v!r:.40}")
    return v


def _weights(where, cfg, W, out):
    params = {"W": W}
    if _flag(where, cfg, "bias", True):
        params["b"] = (out,)
    return params


def _dense(where, cfg):
    i, o = _int(where, cfg, "in_features"), _int(where, cfg, "out_features")
    return _weights(where, cfg, (i, o), o), {}, []


def _conv(where, cfg):
    c, f = _int(where, cfg, "in_channels"), _int(where, cfg, "out_channels")
    return _weights(where, cfg, (f, c, *_pair(where, cfg, "kernel_size")), f), {}, []


def _batchnorm(where, cfg):
    d = (_int(where, cfg, "num_features"),)
    return {"gamma": d, "beta": d}, {"running_mean": d, "running_var": d}, []


def _list(where, cfg, key):
    v = cfg.get(key)
    if not isinstance(v, list):
        raise ValueError(f"{where}: {key} must be a list of layer specs")
    return v


def _chain(where, cfg):
    return {}, {}, [(s, f"Chain layer {i}") for i, s in enumerate(_list(where, cfg, "layers"))]


def _residual(where, cfg):
    children = [(s, f"Residual layer {i}") for i, s in enumerate(_list(where, cfg, "layers"))]
    if cfg.get("shortcut") is not None:
        children.append((cfg["shortcut"], "Residual shortcut"))
    return {}, {}, children


def _concat(where, cfg):
    return {}, {}, [(s, f"Concat branch {i}")
                    for i, s in enumerate(_list(where, cfg, "branches"))]


def _dropconnect(where, cfg):
    t, inner = _type_config(cfg.get("layer"), f"{where} layer")
    if t not in ("Affine", "Conv2D"):
        raise ValueError(f"{where}: DropConnect wraps an Affine or a Conv2D, got {t!r:.40}")
    keys, rule = RULES[t]
    _check_keys(f"{where} layer", t, inner, keys)
    return rule(f"{where} layer", inner)  # the wrapper shares the wrapped layer's dicts


_GEOMETRY = {"kernel_size", "stride", "pad", "bias"}
_BINARY = {"scale", "binarize_input"}
# type -> (config keys it understands, rule(where, config) -> (params, buffers, children
# as (spec, label))), shapes as the constructors make them; tests/test_serial.py
# checks every rule against the layers it describes, and that every cdl layer with
# parameters or children has one.
RULES = {
    "Affine": ({"in_features", "out_features", "bias"}, _dense),
    "BinaryAffine": ({"in_features", "out_features", "bias"} | _BINARY, _dense),
    "Conv2D": ({"in_channels", "out_channels"} | _GEOMETRY, _conv),
    "BinaryConv2D": ({"in_channels", "out_channels"} | _GEOMETRY | _BINARY, _conv),
    "BatchNorm": ({"num_features", "momentum", "eps"}, _batchnorm),
    "Chain": ({"layers"}, _chain),
    "Residual": ({"layers", "shortcut"}, _residual),
    "Concat": ({"branches"}, _concat),
    "DropConnect": ({"layer", "ratio"}, _dropconnect),
}
# cdl layers without parameters, buffers or children: their constructors check the rest
STATELESS = frozenset({"ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Step", "Softmax", "Flatten",
                       "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Dropout",
                       "GaussianNoise", "Binarize"})
# constructor arguments that a file never sets (they are not part of any config())
NOT_FROM_FILES = frozenset({"init", "dtype", "rng"})


def _type_config(spec, where):
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ValueError(f"{where}: expected {{'type', 'config'}}, got {spec!r:.80}")
    if not isinstance(spec["type"], str):
        raise ValueError(f"{where}: unknown layer type {spec['type']!r:.40}")
    if not isinstance(spec["config"], dict):
        raise ValueError(f"{where}: config must be an object")
    return spec["type"], spec["config"]


def _check_keys(where, t, cfg, keys):
    extra = sorted(set(cfg) - keys, key=str)
    if extra:
        raise ValueError(f"{where}: cannot build {t} from {cfg!r:.120}: unexpected "
                         f"key {extra[0]!r:.40}")


class _NoRule(Exception):
    """A registered layer type (a user's) whose state cdl cannot foresee."""


def declared_state(specs, registered):
    """{"params/<flat name>": shape, "buffers/...": shape} that specs need, or None.

    Checks nesting (MAX_LAYER_DEPTH), the number of layers (MAX_LAYERS),
    types (registered: the class names ``cdl.load`` may build) and every size,
    from the JSON alone. None when some type is registered but has no rule
    (a user's layer class): the loader then builds and compares.
    """
    out, count = {}, 0

    def visit(spec, prefix, depth, where):
        nonlocal count
        count += 1
        if count > MAX_LAYERS:
            raise ValueError(f"more than {MAX_LAYERS} layers")
        if depth > MAX_LAYER_DEPTH:
            raise ValueError(f"{where}: layers nested more than {MAX_LAYER_DEPTH} deep")
        t, cfg = _type_config(spec, where)
        if t not in registered:
            raise ValueError(f"{where}: unknown layer type {t!r:.40}")
        forbidden = sorted(set(cfg) & NOT_FROM_FILES)
        if forbidden:
            raise ValueError(f"{where}: cannot build {t} from {cfg!r:.120}: {forbidden[0]!r} "
                             f"is not read from files")
        if t in STATELESS:
            return
        if t not in RULES:
            raise _NoRule(t)
        keys, rule = RULES[t]
        _check_keys(where, t, cfg, keys)
        params, buffers, children = rule(where, cfg)
        out.update({f"params/{prefix}{k}": s for k, s in params.items()})
        out.update({f"buffers/{prefix}{k}": s for k, s in buffers.items()})
        for i, (child, label) in enumerate(children):
            visit(child, f"{prefix}{i}.", depth + 1, f"{where}: {label}")

    try:
        for i, spec in enumerate(specs):
            visit(spec, f"{i}.", 1, f"layer {i}")
    except _NoRule:
        return None
    return out


def compare_state(declared, members):
    """ValueError unless the file's arrays (members: name -> Member) are exactly declared."""
    held = {k: m for k, m in members.items() if k != "__arch__"}
    if set(held) != set(declared):
        missing = sorted(set(declared) - set(held))
        extra = sorted(set(held) - set(declared))
        want = sum(math.prod(s) for s in declared.values())
        have = sum(math.prod(m.shape) for m in held.values())
        raise ValueError(f"missing {missing[:5]}, unexpected {extra[:5]} (the architecture "
                         f"declares {want:,} values, the file holds {have:,})")
    for k, shape in declared.items():
        if held[k].shape != tuple(shape):
            raise ValueError(f"{k} has shape {held[k].shape}, the architecture declares "
                             f"{tuple(shape)}")


def state_dtype(members):
    """The dtype to build a model in (that of its parameters), after checking every dtype."""
    found = set()
    for k, m in members.items():
        if k == "__arch__":
            continue
        if m.dtype.newbyteorder("=") not in MODEL_DTYPES:
            raise ValueError(f"{k} has dtype {m.dtype}; cdl models hold float32 or float64")
        if k.startswith("params/"):
            found.add(m.dtype.newbyteorder("="))
    return found.pop() if len(found) == 1 else np.dtype(np.float32)
