"""Tests of the project's variable store (an orbax checkpoint with orbax's own metadata)."""

from __future__ import annotations


import jax.numpy as jnp
import numpy as np
import pytest

from converse_jax.pretrained import load_variables, save_variables
from converse_jax.pretrained import store
from converse_jax.pretrained.store import ITEM, load_metadata


def _variables(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "params": {
            "head": {"kernel": rng.standard_normal((3, 3, 1, 8)).astype(np.float32),
                     "bias": rng.standard_normal(8).astype(np.float32)},
            "body_0": {"converse": {"weight": rng.standard_normal((1, 8, 7, 7)).astype(np.float32),
                                    "bias": np.array([1e-39, -0.0, np.inf, 3.0] * 2, np.float32).reshape(1, 8, 1, 1)}},
            "alpha": jnp.asarray(rng.standard_normal((1, 1, 1, 8)), jnp.float32),  # a JAX leaf
        }
    }


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}/") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_round_trip_is_bit_exact(tmp_path):
    variables = _variables()
    path = save_variables(tmp_path / "ckpt", variables, arch="converse_dncnn",
                          metadata={"constructor": {"kernel_size": 7}, "source": "converse_dncnn.pth"})
    assert path == (tmp_path / "ckpt").absolute() and (path / "_CHECKPOINT_METADATA").is_file() and (path / ITEM).is_dir()
    arch, restored = load_variables(path)
    assert arch == "converse_dncnn"
    assert load_metadata(path) == {"constructor": {"kernel_size": 7}, "source": "converse_dncnn.pth"}
    want, got = _flat(variables), _flat(restored)
    assert list(sorted(got)) == list(sorted(want))
    for name, value in want.items():
        value = np.asarray(value)
        assert isinstance(got[name], np.ndarray)
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name].view(np.uint32), value.view(np.uint32), err_msg=name)


def test_restore_needs_only_the_store_directory(tmp_path):
    save_variables(tmp_path / "a", {"w": np.arange(6, dtype=np.float32)}, arch="x")
    moved = tmp_path / "elsewhere"
    (tmp_path / "a").rename(moved)
    arch, restored = load_variables(moved)
    assert arch == "x" and restored["w"].tolist() == list(range(6))


def test_other_dtypes_survive(tmp_path):
    variables = {"f64": np.array([1 / 3]), "i32": np.array([-7, 8], np.int32), "b": np.array([True, False]),
                 "scalar": np.float32(2.5)}
    _, restored = load_variables(save_variables(tmp_path / "s", variables, arch="x"))
    for k, v in variables.items():
        assert restored[k].dtype == np.asarray(v).dtype and np.array_equal(restored[k], v), k


def test_existing_store_needs_overwrite_and_old_data_is_replaced(tmp_path):
    path = tmp_path / "ckpt"
    save_variables(path, _variables(0), arch="old", metadata={"step": 1})
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_variables(path, _variables(1), arch="new")
    assert sorted(p.name for p in path.iterdir()) == before
    assert load_variables(path)[0] == "old"

    save_variables(path, _variables(1), arch="new", overwrite=True)
    arch, restored = load_variables(path)
    assert arch == "new" and load_metadata(path) == {}
    np.testing.assert_array_equal(restored["params"]["head"]["bias"], _variables(1)["params"]["head"]["bias"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # the old store and the staging are gone


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def disk_full(staged, path):
        raise OSError("simulated: no space left on device")

    monkeypatch.setattr(store, "_commit", disk_full)  # fails after orbax wrote the checkpoint
    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="simulated"):
        save_variables(fresh, _variables(), arch="x")
    assert not fresh.exists()
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    kept = tmp_path / "kept"
    save_variables(kept, _variables(0), arch="kept")
    before = sorted(p.name for p in kept.iterdir())
    monkeypatch.setattr(store, "_commit", disk_full)
    with pytest.raises(OSError, match="simulated"):
        save_variables(kept, _variables(1), arch="new", overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in kept.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    arch, restored = load_variables(kept)
    assert arch == "kept"
    np.testing.assert_array_equal(restored["params"]["head"]["bias"], _variables(0)["params"]["head"]["bias"])


def test_bad_paths(tmp_path):
    v = {"w": np.ones(2, np.float32)}
    with pytest.raises(ValueError, match="parent directory"):
        save_variables(tmp_path / "missing" / "ckpt", v, arch="x")
    a_file = tmp_path / "file"
    a_file.write_text("not a store")
    with pytest.raises(ValueError, match="not a directory"):
        save_variables(a_file, v, arch="x", overwrite=True)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "important.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a variable store"):
        save_variables(foreign, v, arch="x", overwrite=True)
    assert (foreign / "important.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_variables(save_variables(empty, v, arch="x"))[0] == "x"

    with pytest.raises(FileNotFoundError):
        load_variables(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a variable store"):
        load_variables(foreign)
    with pytest.raises(ValueError, match="not a variable store"):
        load_variables(a_file)


def test_folders_of_the_manifest_format_get_the_reconvert_command(tmp_path):
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / "converse_variables.json").write_text('{"format": "converse-jax-variables", "format_version": 1}')
    (legacy / "variables-0123").mkdir()
    with pytest.raises(ValueError, match=r"older converse-jax .* converse-jax convert IN.pth .*old --overwrite"):
        load_variables(legacy)
    save_variables(legacy, {"w": np.ones(2, np.float32)}, arch="x", overwrite=True)  # converting again works
    assert load_variables(legacy)[0] == "x"


def test_an_orbax_checkpoint_without_the_record_is_not_a_store(tmp_path):
    import orbax.checkpoint as ocp

    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
        checkpointer.save(tmp_path / "plain", args=ocp.args.Composite(**{ITEM: ocp.args.StandardSave({"w": np.ones(2)})}))
    with pytest.raises(ValueError, match="without the 'converse_jax' record"):
        load_variables(tmp_path / "plain")


@pytest.mark.parametrize(
    ("variables", "kwargs", "match"),
    [
        ({"w": np.ones(2)}, {"arch": ""}, "arch"),
        ({"w": np.ones(2)}, {"arch": "x", "metadata": {"bad": float("nan")}}, "metadata"),
        ({"w": np.ones(2)}, {"arch": "x", "metadata": {"bad": object()}}, "metadata"),
        ({"w": np.ones(2)}, {"arch": "x", "metadata": [1]}, "metadata"),
        ({"a.b": np.ones(2)}, {"arch": "x"}, "'a.b'"),
        ({"w": [1.0, 2.0]}, {"arch": "x"}, "expected an array"),
        ({"w": np.ones((0, 2))}, {"arch": "x"}, "empty arrays"),
        ({"w": np.array(["s"])}, {"arch": "x"}, "numeric"),
        ({}, {"arch": "x"}, "no arrays"),
        ([np.ones(2)], {"arch": "x"}, "mapping"),
    ],
)
def test_bad_arguments_write_nothing(tmp_path, variables, kwargs, match):
    with pytest.raises(ValueError, match=match):
        save_variables(tmp_path / "ckpt", variables, **kwargs)
    assert not (tmp_path / "ckpt").exists()
