"""The allow-listed unpickler of :mod:`converse_jax.pretrained.pth`: local stand-ins, size budget.

``torch.save`` pickles reference ``torch`` callables; :class:`_SafeUnpickler` resolves only an
explicit allow-list of them (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter``, the typed storage classes) to the *local* stand-ins below
and raises :class:`UnsafeCheckpointError` for every other global, before it could be called.
Storages are read from the zip archive as NumPy arrays and tensors rebuilt with
``as_strided`` under a :class:`_Budget` of ``_MAX_EXPANSION`` times the file's size (see
:mod:`converse_jax.pretrained.pth` for the rules).
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import re
import sys
import zipfile
from typing import Any

import numpy as np

__all__ = ["UnsafeCheckpointError"]


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle references a global that is not on the reader's allow-list.

    Raised by :func:`converse_jax.pretrained.pth.read_pth` before the global is imported or called; a ``ValueError``.

    Example:
      >>> import pickle, tempfile
      >>> from pathlib import Path
      >>> from converse_jax.pretrained.pth import read_pth
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
      converse_jax.pretrained.unpickler.UnsafeCheckpointError: ...evil.pth: refusing to load ... global 'builtins.eval', which is not ...
      >>> issubclass(UnsafeCheckpointError, ValueError)
      True
      >>> tmp.cleanup()
    """


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
