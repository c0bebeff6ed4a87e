"""Safe reader for PyTorch ``.pth`` checkpoints, without torch and without executing code.

A ``.pth`` written by ``torch.save`` (PyTorch >= 1.6, the default "zip" serialisation) is a zip
archive with a single top-level folder whose name varies (``archive/``, or the training
iteration such as ``1075000_G/`` for the official ConverseNet weights)::

    <folder>/data.pkl      pickle of the saved object; tensors are references to storages
    <folder>/data/<key>    raw bytes of storage <key> (numel * itemsize bytes)
    <folder>/byteorder     b"little" or b"big" (absent in old files: little-endian)
    <folder>/version       serialisation format version (ignored)

Unpickling an arbitrary pickle can run arbitrary code (any importable callable can be
invoked through the GLOBAL/REDUCE opcodes). :func:`read_pth` therefore uses a
:class:`pickle.Unpickler` whose ``find_class`` resolves only an explicit allow-list of names
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter`` and the typed storage classes such as
``torch.FloatStorage``) to *local* stand-ins defined in this module; every other global raises
:class:`UnsafeCheckpointError` before it could be called. ``torch`` is never imported.
Tensors are rebuilt with :func:`numpy.frombuffer` on the storage bytes and
:func:`numpy.lib.stride_tricks.as_strided` with the stored offset, size and stride, then copied
into an independent C-contiguous array. Declared sizes are never trusted: before anything is
allocated, storages and tensors together must fit in ``_MAX_EXPANSION`` (16) times the file's
size, every tensor's highest element offset (``offset + sum((size_i - 1) * stride_i)``) must lie
inside its storage, and its element count must not exceed the storage's (so stride-0 "expanded"
tensors, which could declare terabytes over one stored element, are refused).

Not supported (raise ``ValueError``): the legacy pre-1.6 non-zip format, TorchScript archives,
sparse/quantised tensors, dtypes without a legacy typed storage (float8, uint16, ...).
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import re
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["UnsafeCheckpointError", "read_pth", "WRAPPER_KEYS"]


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle references a global that is not on the reader's allow-list.

    Raised by :func:`read_pth` before the global is imported or called; a ``ValueError``.

    Example:
      >>> import pickle, tempfile
      >>> class Payload:  # unpickling this would call eval(...)
      ...     def __reduce__(self):
      ...         return (eval, ("print('code ran')",))
      >>> tmp = tempfile.TemporaryDirectory()
      >>> path = Path(tmp.name) / "evil.pth"
      >>> with zipfile.ZipFile(path, "w") as z:
      ...     z.writestr("archive/data.pkl", pickle.dumps(Payload()))
      >>> read_pth(path)  # nothing is printed: eval is never called  # doctest: +ELLIPSIS
      Traceback (most recent call last):
      ...
      converse_jax.pretrained.pth.UnsafeCheckpointError: ...evil.pth: refusing to load ... global 'builtins.eval', which is not ...
      >>> issubclass(UnsafeCheckpointError, ValueError)
      True
      >>> tmp.cleanup()
    """


# Keys under which training frameworks commonly nest the state dict (BasicSR/KAIR use
# 'params'/'params_ema', Lightning and many scripts 'state_dict', others 'model_state_dict'/'model').
WRAPPER_KEYS: tuple[str, ...] = ("params", "params_ema", "state_dict", "model_state_dict", "model")


class _Sealed:
    """Base of the objects the pickle can create: no ``__dict__`` and no state setting.

    The pickle's BUILD opcode calls ``__setstate__`` (or fills ``__dict__``); refusing it means no
    opcode can alter a storage or tensor after it was created and checked.
    """

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise ValueError(f"malformed checkpoint: the pickle tries to set state on a {type(self).__name__}")


class _StorageType(_Sealed):
    """Local stand-in for a ``torch.<Name>Storage`` class: only carries the element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype) -> None:
        self.name, self.dtype = name, dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Budget:
    """Bytes the reader may still allocate for one file: ``_MAX_EXPANSION`` x the file's size."""

    __slots__ = ("file_size", "left")

    def __init__(self, file_size: int) -> None:
        self.file_size, self.left = file_size, _MAX_EXPANSION * file_size

    def take(self, nbytes: int, what: str) -> None:
        """Reserve ``nbytes`` for ``what`` or raise ``ValueError`` before anything is allocated."""
        if nbytes > self.left:
            raise ValueError(
                f"malformed checkpoint: {what} needs {nbytes} bytes; together with the tensors before it "
                f"that exceeds {_MAX_EXPANSION} x the file's {self.file_size} bytes, so it is refused"
            )
        self.left -= nbytes


class _Storage(_Sealed):
    """A storage loaded from ``<folder>/data/<key>``: a 1-D native-endian array of its elements."""

    __slots__ = ("key", "data", "budget")

    def __init__(self, key: str, data: np.ndarray, budget: _Budget) -> None:
        self.key, self.data, self.budget = key, data, budget


class _Tensor(_Sealed):
    """Result of a tensor rebuild inside the pickle; unwrapped to its array after unpickling."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _bfloat16() -> np.dtype:
    try:
        import ml_dtypes  # a dependency of jax
    except ImportError as err:  # pragma: no cover - ml_dtypes ships with jax
        raise ValueError("bfloat16 tensors need the 'ml_dtypes' package") from err
    return np.dtype(ml_dtypes.bfloat16)


_STORAGE_DTYPES: dict[str, Any] = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": _bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
}


def _as_index_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise ValueError(f"malformed checkpoint: tensor {what} must be a tuple of ints >= 0, got {value!r}")
    return value


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a bounds-checked strided view, copied.

    ``requires_grad``, ``backward_hooks`` and ``metadata`` carry no array data and are ignored.
    """
    if not isinstance(storage, _Storage):
        raise ValueError(f"malformed checkpoint: tensor storage is {type(storage).__name__}, not a storage")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool) or storage_offset < 0:
        raise ValueError(f"malformed checkpoint: storage offset {storage_offset!r} is not an int >= 0")
    shape = _as_index_tuple(size, "size")
    strides = _as_index_tuple(stride, "stride")
    if len(shape) != len(strides):
        raise ValueError(f"malformed checkpoint: size {shape} and stride {strides} differ in length")
    flat = storage.data
    if 0 in shape:
        return _Tensor(np.empty(shape, dtype=flat.dtype))
    last = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= flat.size:
        raise ValueError(
            f"malformed checkpoint: tensor (offset {storage_offset}, size {shape}, stride {strides}) "
            f"reads element {last} of storage {storage.key!r} that has only {flat.size} elements"
        )
    numel = math.prod(shape)
    if numel > flat.size:  # only overlapping strides (e.g. stride 0) can get here
        raise ValueError(
            f"malformed checkpoint: tensor (size {shape}, stride {strides}) declares {numel} elements "
            f"but its storage {storage.key!r} holds only {flat.size} (overlapping strides are not supported)"
        )
    storage.budget.take(numel * flat.itemsize, f"tensor of size {shape} over storage {storage.key!r}")
    view = np.lib.stride_tricks.as_strided(
        flat[storage_offset:],
        shape=shape,
        strides=tuple(s * flat.itemsize for s in strides),
        writeable=False,
    )
    return _Tensor(np.array(view, order="C", copy=True))


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> _Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is just its tensor."""
    if not isinstance(data, _Tensor):
        raise ValueError(f"malformed checkpoint: parameter data is {type(data).__name__}, not a tensor")
    return data


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }
    for name in _STORAGE_DTYPES:
        allowed[("torch", name)] = name  # resolved lazily to a _StorageType in find_class
    return allowed


_ALLOWED = _allowed_globals()

_MAX_EXPANSION = 16
"""The reader allocates at most this many times the ``.pth`` file's size (storages plus tensors).

``torch.save`` stores storages uncompressed, so genuine storages total less than the file and
their tensors (copies; tied weights share a storage) rarely more than twice that; the margin
also admits archives re-packed with compression. A deflated record can expand ~1000x (a zip
bomb) and stride tricks can declare any size: such declarations are refused before anything is
read or allocated."""


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals and loads storages from the zip."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, folder: str, byteorder: str, file_size: int) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._budget = _Budget(file_size)
        self._folder = folder
        self._byteorder = byteorder
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise UnsafeCheckpointError(
                f"refusing to load checkpoint: its pickle references the global '{module}.{name}', "
                "which is not on the allow-list of tensor-rebuild functions and storage types "
                "(it was not imported or called)"
            )
        if isinstance(target, str):
            spec = _STORAGE_DTYPES[target]
            dtype = spec() if spec is _bfloat16 else np.dtype(spec)
            return _StorageType(target, dtype)
        return target

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ValueError(f"malformed checkpoint: unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise ValueError(f"malformed checkpoint: storage type {storage_type!r} is not a storage class")
        if not isinstance(key, str) or not re.fullmatch(r"[0-9A-Za-z_.-]+", key):
            raise ValueError(f"malformed checkpoint: storage key {key!r} is not a plain record name")
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise ValueError(f"malformed checkpoint: storage element count {numel!r} is not an int >= 0")
        cached = self._storages.get(key)
        if cached is not None:
            if cached.data.dtype != storage_type.dtype or cached.data.size != numel:
                raise ValueError(f"malformed checkpoint: storage {key!r} is referenced with two dtypes/sizes")
            return cached
        record = f"{self._folder}/data/{key}"
        try:
            info = self._archive.getinfo(record)
        except KeyError:
            raise ValueError(f"malformed checkpoint: storage record {record!r} is missing") from None
        nbytes = numel * storage_type.dtype.itemsize
        self._budget.take(nbytes, f"storage {key!r} of {numel} elements")
        if info.file_size != nbytes:
            raise ValueError(
                f"malformed checkpoint: storage record {record!r} holds {info.file_size} bytes, "
                f"expected {numel} x {storage_type.dtype.itemsize} = {nbytes}"
            )
        data = np.frombuffer(self._archive.read(record), dtype=storage_type.dtype)
        if self._byteorder != sys.byteorder and data.dtype.itemsize > 1:
            data = data.byteswap()
        storage = _Storage(key, data, self._budget)
        self._storages[key] = storage
        return storage


def _find_folder(archive: zipfile.ZipFile) -> str:
    folders = sorted({n[: -len("/data.pkl")] for n in archive.namelist() if re.fullmatch(r"[^/]+/data\.pkl", n)})
    if len(folders) != 1:
        found = "none" if not folders else ", ".join(f"'{f}/data.pkl'" for f in folders)
        raise ValueError(
            f"not a torch.save archive: expected exactly one '<folder>/data.pkl' record, found {found}"
        )
    return folders[0]


def _read_byteorder(archive: zipfile.ZipFile, folder: str) -> str:
    record = f"{folder}/byteorder"
    if record not in archive.namelist():
        return "little"  # files written before the record existed are little-endian
    mark = archive.read(record).strip()
    if mark not in (b"little", b"big"):
        raise ValueError(f"malformed checkpoint: byteorder record is {mark!r}, expected b'little' or b'big'")
    return mark.decode()


def _unwrap(obj: Any) -> dict[str, np.ndarray] | None:
    """``obj`` as a plain name -> array dict when it is a mapping of str to tensors, else None."""
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, _Tensor) for k, v in obj.items()):
        return None
    return {k: v.array for k, v in obj.items()}


def _select_state_dict(obj: Any, key: str | None, path: Path) -> dict[str, np.ndarray]:
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            have = sorted(str(k) for k in obj) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"key: {key!r} is not a top-level entry of {path} (found {have})")
        state = _unwrap(obj[key])
        if state is None:
            raise ValueError(f"key: entry {key!r} of {path} is not a mapping of parameter names to tensors")
        return state
    state = _unwrap(obj)
    if state is not None:
        return state
    if isinstance(obj, dict):
        candidates = [k for k in WRAPPER_KEYS if k in obj and _unwrap(obj[k]) is not None]
        if len(candidates) == 1:
            return _unwrap(obj[candidates[0]])  # type: ignore[return-value]
        if len(candidates) > 1:
            raise ValueError(
                f"{path} wraps several state dicts ({', '.join(map(repr, candidates))}); choose one with key="
            )
        bad = next((k for k, v in obj.items() if not isinstance(v, _Tensor)), None)
        raise ValueError(
            f"{path} is not a state dict: entry {bad!r} is not a tensor and none of the wrapper keys "
            f"{WRAPPER_KEYS} holds a mapping of names to tensors"
        )
    raise ValueError(f"{path} holds a pickled {type(obj).__name__}, not a state dict")


def read_pth(path: str | os.PathLike[str], *, key: str | None = None) -> dict[str, np.ndarray]:
    r"""Read the tensors of a PyTorch ``.pth`` checkpoint as NumPy arrays, safely.

    Args:
      path: a ``torch.save`` zip archive (PyTorch >= 1.6 format). Its single top-level folder
        may have any name; it is discovered from the ``<folder>/data.pkl`` record.
      key: for checkpoints whose top level is a dict that *wraps* the state dict, the entry to
        read. When ``None``: a top level that maps names to tensors is the state dict itself;
        otherwise exactly one of :data:`WRAPPER_KEYS` (``'params'``, ``'params_ema'``,
        ``'state_dict'``, ``'model_state_dict'``, ``'model'``) must hold a name -> tensor mapping
        (several -> ``ValueError`` asking for ``key``). Other entries (epoch, optimiser state of
        plain values) are ignored.

    Returns:
      A plain ``dict`` mapping each PyTorch parameter name (e.g. ``'model.0.weight'``) to a
      C-contiguous, native-endian, writable :class:`numpy.ndarray` with PyTorch's shape and
      layout (conv weights ``(out, in, kh, kw)``, activations NCHW) and the stored dtype
      (``float32`` for these checkpoints; bit-identical to the stored values), in checkpoint
      order. Tensors sharing one storage become independent copies.

    Raises:
      UnsafeCheckpointError: (a ``ValueError``) the pickle references a global that is not on
        the allow-list, e.g. ``posix.system`` or ``builtins.eval``; it is never imported or called.
      ValueError: the file is not a zip ``torch.save`` archive (legacy format, truncated,
        corrupt), a record is missing or has the wrong size, a storage declares more than 16x
        the file's size, a tensor reads outside its storage or declares more elements than it
        holds (stride tricks), or the content is not a state dict.
      FileNotFoundError: ``path`` does not exist.

    Example:
      A checkpoint as ``torch.save({"conv.weight": torch.arange(6.).reshape(2, 3)}, path)``
      writes it, assembled here by hand (text pickle opcodes) since torch is not needed:

      >>> import tempfile
      >>> pkl = (b"ccollections\nOrderedDict\n(tR(Vconv.weight\n"  # OrderedDict(), a key
      ...        b"ctorch._utils\n_rebuild_tensor_v2\n("  # its tensor: rebuild(
      ...        b"(Vstorage\nctorch\nFloatStorage\nV0\nVcpu\nI6\ntQ"  # storage '0', 6 floats,
      ...        b"I0\n(I2\nI3\nt(I3\nI1\nt"  # offset 0, size (2, 3), stride (3, 1),
      ...        b"I00\nccollections\nOrderedDict\n(tRtRu.")  # no grad, no hooks)
      >>> tmp = tempfile.TemporaryDirectory()
      >>> path = Path(tmp.name) / "tiny.pth"
      >>> with zipfile.ZipFile(path, "w") as z:
      ...     z.writestr("archive/data.pkl", pkl)
      ...     z.writestr("archive/data/0", np.arange(6, dtype="<f4").tobytes())
      >>> read_pth(path)
      {'conv.weight': array([[0., 1., 2.],
             [3., 4., 5.]], dtype=float32)}
      >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        if not path.exists():
            raise FileNotFoundError(f"path: checkpoint {path} does not exist")
        raise ValueError(f"path: {path} is not a file")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            head = f.read(2)
        hint = (
            " It looks like a pickle (legacy pre-1.6 torch format), which is not supported: re-save it "
            "with a recent torch.save."
            if head[:1] == b"\x80"
            else " It may be truncated or not a checkpoint at all."
        )
        raise ValueError(f"path: {path} is not a zip-format torch checkpoint.{hint}")
    try:
        with zipfile.ZipFile(path) as archive:
            folder = _find_folder(archive)
            byteorder = _read_byteorder(archive, folder)
            pickled = archive.read(f"{folder}/data.pkl")
            obj = _SafeUnpickler(pickled, archive, folder, byteorder, path.stat().st_size).load()
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(f"{path}: {err}") from None
    except (ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError, pickle.UnpicklingError,
            EOFError, TypeError, KeyError, IndexError, AttributeError, OSError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    return _select_state_dict(obj, key, path)
