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
``torch.FloatStorage``) to *local* stand-ins (:mod:`converse_jax.pretrained.unpickler`); every other global raises
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

import os
import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from converse_jax.pretrained.unpickler import UnsafeCheckpointError, _SafeUnpickler, _Tensor
from converse_jax.utils.checksum import weights_problem

__all__ = ["UnsafeCheckpointError", "check_finite", "read_pth", "WRAPPER_KEYS"]


# Keys under which training frameworks commonly nest the state dict (BasicSR/KAIR use
# 'params'/'params_ema', Lightning and many scripts 'state_dict', others 'model_state_dict'/'model').
WRAPPER_KEYS: tuple[str, ...] = ("params", "params_ema", "state_dict", "model_state_dict", "model")


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


def check_finite(state_dict: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``ValueError`` naming ``path`` and the tensors if a floating-point array of ``state_dict``
    (a ``.pth`` state dict, or nested variables: names joined with ``/``) holds NaN or infinity.

    Example:
      >>> check_finite({"w": np.ones(2, np.float32)}, "a.pth")  # fine: returns None
      >>> check_finite({"w": np.array([1, np.nan], np.float32)}, "a.pth")
      Traceback (most recent call last):
      ...
      ValueError: path: a.pth: w holds NaN or infinity; non-finite weights are refused
    """
    problem = weights_problem(state_dict, None)
    if problem:
        raise ValueError(f"path: {path}: {problem}; non-finite weights are refused")
