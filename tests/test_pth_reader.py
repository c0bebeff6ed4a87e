"""Tests of the torch-free, code-execution-free ``.pth`` reader."""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import shared_path

from converse_jax.pretrained import UnsafeCheckpointError, read_pth

MODELS = ["converse_dncnn", "converse_srresnet", "conversenet", "converse_usrnet"]


# --- a tiny pickle assembler, to write torch-like pickles without torch ------------------------
# pickle.dumps cannot reference ``torch._utils._rebuild_tensor_v2`` without torch installed, so the
# synthetic checkpoints are assembled from the stdlib's documented opcodes instead.


@dataclass(frozen=True)
class G:
    """A GLOBAL reference ``module.name``."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """``func(*args)`` through the REDUCE opcode."""

    func: Any
    args: tuple


@dataclass(frozen=True)
class PersId:
    """A persistent id (BINPERSID), as torch uses for storages."""

    pid: tuple


def _emit(obj: Any) -> bytes:
    if isinstance(obj, bool):
        return pickle.NEWTRUE if obj else pickle.NEWFALSE
    if isinstance(obj, int):
        return pickle.BININT + struct.pack("<i", obj)
    if isinstance(obj, str):
        raw = obj.encode()
        return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw
    if isinstance(obj, tuple):
        return pickle.MARK + b"".join(_emit(o) for o in obj) + pickle.TUPLE
    if isinstance(obj, G):
        return pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode()
    if isinstance(obj, Call):
        return _emit(obj.func) + _emit(obj.args) + pickle.REDUCE
    if isinstance(obj, PersId):
        return _emit(obj.pid) + pickle.BINPERSID
    if isinstance(obj, dict):  # an OrderedDict, as torch state dicts are
        items = b"".join(_emit(k) + _emit(v) for k, v in obj.items())
        return _emit(G("collections", "OrderedDict")) + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.MARK + items + pickle.SETITEMS
    raise TypeError(type(obj))


def _assemble(obj: Any) -> bytes:
    return pickle.PROTO + bytes([2]) + _emit(obj) + pickle.STOP


def tensor(key: str, numel: int, offset: int, size: tuple, stride: tuple, storage: str = "FloatStorage") -> Call:
    """The pickle expression torch writes for a tensor viewing storage ``key``."""
    pid = PersId(("storage", G("torch", storage), key, "cpu", numel))
    hooks = Call(G("collections", "OrderedDict"), ())
    return Call(G("torch._utils", "_rebuild_tensor_v2"), (pid, offset, size, stride, False, hooks))


def write_pth(path: Path, data_pkl: bytes, storages: dict[str, bytes], *, folder: str = "archive",
              byteorder: bytes | None = b"little") -> Path:
    """A zip laid out like ``torch.save`` output, with the given pickle and storage records."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{folder}/data.pkl", data_pkl)
        if byteorder is not None:
            z.writestr(f"{folder}/byteorder", byteorder)
        for key, raw in storages.items():
            z.writestr(f"{folder}/data/{key}", raw)
        z.writestr(f"{folder}/version", b"3\n")
    return path


# --- the four official checkpoints --------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_official_checkpoint_matches_golden_state_dict(model):
    state = read_pth(shared_path(f"data/weights/{model}.pth"))
    golden = np.load(shared_path(f"golden/{model}.npz"))
    names = [str(n) for n in golden["state_dict_names"]]
    assert list(state) == names
    for name in names:
        ref = golden[f"state_dict/{name}"]
        got = state[name]
        assert isinstance(got, np.ndarray) and got.flags.c_contiguous and got.flags.writeable
        assert got.dtype == ref.dtype == np.float32 and got.shape == ref.shape, name
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32), err_msg=name)
    assert sum(v.size for v in state.values()) == int(golden["param_count"])


def test_official_checkpoint_folder_is_discovered():
    path = shared_path("data/weights/converse_dncnn.pth")
    with zipfile.ZipFile(path) as z:
        assert {n.split("/")[0] for n in z.namelist()} == {"1075000_G"}  # not the usual 'archive/'
    names = np.load(shared_path("golden/converse_dncnn.npz"))["state_dict_names"]
    assert len(read_pth(path)) == len(names) == 284


# --- synthetic checkpoints: layout features ---------------------------------------------------


def test_strided_offset_views_and_shared_storage(tmp_path):
    base = np.arange(24, dtype=np.float32)
    sd = {
        "full": tensor("0", 24, 0, (2, 3, 4), (12, 4, 1)),
        "transposed": tensor("0", 24, 0, (4, 3), (1, 4)),  # non-contiguous view
        "offset": tensor("0", 24, 5, (2, 2), (6, 1)),
        "scalar": tensor("0", 24, 7, (), ()),
        "empty": tensor("0", 24, 0, (0, 3), (3, 1)),
        "ints": tensor("1", 3, 0, (3,), (1,), storage="LongStorage"),
    }
    path = write_pth(tmp_path / "m.pth", _assemble(sd),
                     {"0": base.tobytes(), "1": np.array([-1, 2, 3], "<i8").tobytes()}, folder="weird_name-1")
    state = read_pth(path)
    assert list(state) == list(sd)
    np.testing.assert_array_equal(state["full"], base.reshape(2, 3, 4))
    np.testing.assert_array_equal(state["transposed"], base[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(state["offset"], np.array([[5, 6], [11, 12]], np.float32))
    assert state["scalar"].shape == () and state["scalar"] == 7
    assert state["empty"].shape == (0, 3)
    assert state["ints"].dtype == np.int64 and state["ints"].tolist() == [-1, 2, 3]
    state["full"][0, 0, 0] = 99  # independent copies, not views of one buffer
    assert state["transposed"][0, 0] == 0


def test_big_endian_and_missing_byteorder(tmp_path):
    values = np.array([1.5, -2.25, 3e-8], np.float32)
    pkl = _assemble({"w": tensor("0", 3, 0, (3,), (1,))})
    big = read_pth(write_pth(tmp_path / "b.pth", pkl, {"0": values.astype(">f4").tobytes()}, byteorder=b"big"))
    old = read_pth(write_pth(tmp_path / "o.pth", pkl, {"0": values.astype("<f4").tobytes()}, byteorder=None))
    for state in (big, old):
        assert state["w"].dtype == np.float32 and state["w"].dtype.isnative
        np.testing.assert_array_equal(state["w"], values)


def test_parameter_rebuild_and_half_storage(tmp_path):
    values = np.array([0.5, 1.0, -3.0], np.float16)
    param = Call(G("torch._utils", "_rebuild_parameter"),
                 (tensor("0", 3, 0, (3,), (1,), storage="HalfStorage"), True, Call(G("collections", "OrderedDict"), ())))
    state = read_pth(write_pth(tmp_path / "p.pth", _assemble({"p": param}), {"0": values.tobytes()}))
    assert state["p"].dtype == np.float16
    np.testing.assert_array_equal(state["p"], values)


def test_wrapped_state_dicts(tmp_path):
    storages = {"0": np.arange(4, dtype=np.float32).tobytes()}
    inner = {"a.weight": tensor("0", 4, 0, (2, 2), (2, 1))}
    one = write_pth(tmp_path / "one.pth", _assemble({"params": inner, "epoch": 3}), storages)
    np.testing.assert_array_equal(read_pth(one)["a.weight"], np.arange(4).reshape(2, 2))
    two = write_pth(tmp_path / "two.pth", _assemble({"params": inner, "params_ema": inner}), storages)
    with pytest.raises(ValueError, match="several state dicts"):
        read_pth(two)
    assert list(read_pth(two, key="params_ema")) == ["a.weight"]
    with pytest.raises(ValueError, match="key: 'nope'"):
        read_pth(two, key="nope")
    junk = write_pth(tmp_path / "junk.pth", _assemble({"step": 3}), {})
    with pytest.raises(ValueError, match="not a state dict"):
        read_pth(junk)


# --- malicious checkpoints: must raise and must not run anything --------------------------------


class _Exploit:
    """Pickles to a call of ``func(*args)`` on load (classic pickle code execution)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("protocol", [2, 4, 5])  # GLOBAL (protocol 2) and STACK_GLOBAL (>= 4)
@pytest.mark.parametrize("payload", ["os.system", "eval", "exec"])
def test_malicious_pickle_is_refused_without_side_effect(tmp_path, protocol, payload):
    marker = tmp_path / "pwned"
    if payload == "os.system":
        exploit = _Exploit(os.system, f"touch {marker}")
        names = ("posix.system", "nt.system", "os.system")
    else:
        code = f"open({str(marker)!r}, 'w').close()"
        exploit = _Exploit(eval if payload == "eval" else exec, code)
        names = (f"builtins.{payload}", f"__builtin__.{payload}")  # protocol 2 writes Python 2 names
    # hidden inside an otherwise ordinary state dict, as a real attack would be
    pkl = pickle.dumps(collections.OrderedDict([("conv.weight", exploit)]), protocol=protocol)
    path = write_pth(tmp_path / "evil.pth", pkl, {}, folder="1075000_G")
    with pytest.raises(UnsafeCheckpointError) as info:
        read_pth(path)
    assert any(f"'{n}'" in str(info.value) for n in names), str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_malicious_storage_type_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    pid = PersId(("storage", Call(G("posix", "system"), (f"touch {marker}",)), "0", "cpu", 1))
    evil = Call(G("torch._utils", "_rebuild_tensor_v2"), (pid, 0, (1,), (1,), False, Call(G("collections", "OrderedDict"), ())))
    path = write_pth(tmp_path / "evil.pth", _assemble({"w": evil}), {"0": b"\0" * 4})
    with pytest.raises(UnsafeCheckpointError, match="'posix.system'"):
        read_pth(path)
    assert not marker.exists()


def test_allow_listed_module_with_other_attribute_is_refused(tmp_path):
    for ref in (G("torch._utils", "_rebuild_tensor_v3"), G("torch", "load"), G("collections", "OrderedDict.fromkeys"),
                G("torch.serialization", "_get_layout")):
        path = write_pth(tmp_path / "evil.pth", _assemble({"w": Call(ref, ())}), {})
        with pytest.raises(UnsafeCheckpointError, match=f"'{ref.module}.{ref.name}'"):
            read_pth(path)


def test_out_of_bounds_and_inconsistent_tensors_are_malformed(tmp_path):
    raw = {"0": np.zeros(4, np.float32).tobytes()}
    for bad in (tensor("0", 4, 2, (3,), (1,)),        # reads past the end of the storage
                tensor("0", 4, 0, (2, 2), (2,)),       # size/stride length mismatch
                tensor("0", 4, -1, (1,), (1,)),        # negative offset
                tensor("0", 5, 0, (1,), (1,)),         # numel disagrees with the record's size
                tensor("9", 4, 0, (1,), (1,)),         # missing record
                tensor("../0", 4, 0, (1,), (1,))):     # record name escaping the data folder
        path = write_pth(tmp_path / "bad.pth", _assemble({"w": bad}), raw)
        with pytest.raises(ValueError, match="cannot read checkpoint") as info:
            read_pth(path)
        assert not isinstance(info.value, UnsafeCheckpointError)


def test_pickle_cannot_tamper_with_rebuilt_objects(tmp_path):
    raw = {"0": np.zeros(4, np.float32).tobytes()}
    hooks = Call(G("collections", "OrderedDict"), ())
    good = tensor("0", 4, 0, (4,), (1,))
    storage_type = G("torch", "FloatStorage")
    cases = {
        "BUILD on a tensor": _emit(good) + _emit({"shape": 1}) + pickle.BUILD,
        "BUILD on a storage type": _emit(storage_type) + _emit({"dtype": "O"}) + pickle.BUILD,
        "string as storage": _emit(Call(G("torch._utils", "_rebuild_tensor_v2"), ("x", 0, (1,), (1,), False, hooks))),
        "call of a storage type": _emit(Call(storage_type, ())),
        "bad persistent id": _emit(PersId(("module", "os"))),
    }
    for expr in cases.values():
        pkl = pickle.PROTO + bytes([2]) + _emit(G("collections", "OrderedDict")) + pickle.EMPTY_TUPLE + pickle.REDUCE
        pkl += pickle.MARK + _emit("w") + expr + pickle.SETITEMS + pickle.STOP
        path = write_pth(tmp_path / "bad.pth", pkl, raw)
        with pytest.raises(ValueError, match="cannot read checkpoint"):
            read_pth(path)
        path.unlink()


# --- files that are not zip checkpoints ---------------------------------------------------------


def test_legacy_pickle_file_is_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps(_Exploit(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(ValueError, match="legacy"):
        read_pth(path)
    assert not marker.exists()


def test_truncated_and_garbage_files(tmp_path):
    real = shared_path("data/weights/conversenet.pth").read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(real[: len(real) // 2])
    with pytest.raises(ValueError, match="not a zip-format torch checkpoint"):
        read_pth(truncated)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(ValueError, match="not a zip-format torch checkpoint"):
        read_pth(garbage)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a zip-format"):
        read_pth(empty)


def test_zip_that_is_not_a_torch_archive(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="data.pkl"):
        read_pth(path)
    cut = tmp_path / "cut.pth"
    write_pth(cut, _assemble({"w": tensor("0", 1, 0, (1,), (1,))})[:-5], {"0": b"\0" * 4})
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        read_pth(cut)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_pth(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="not a file"):
        read_pth(tmp_path)
