"""Official weights -> Flax: golden forward parity of the four released models (float32 and
float64), the strict PyTorch <-> Flax mapping, architecture inference and ``load``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import shared_path

from converse_jax.models import (
    ConverseDnCNN,
    ConverseNet,
    ConverseSRResNet,
    ConverseUSRNet,
    abstract_variables,
    get_model,
    list_models,
)
from converse_jax.pretrained import from_torch, infer_arch, load, save_variables, to_torch

RELEASED = {
    "converse_dncnn": ConverseDnCNN,
    "converse_srresnet": ConverseSRResNet,
    "conversenet": ConverseNet,
    "converse_usrnet": ConverseUSRNet,
}


def _golden(name: str):
    data = np.load(shared_path(f"golden/{name}.npz"))
    state_dict = {n: data[f"state_dict/{n}"] for n in data["state_dict_names"]}
    return data, state_dict


def _forward(name: str, data, variables, dtype) -> np.ndarray:
    """Apply the released model to the golden input; NCHW float64 result."""
    x = jnp.asarray(data["input"].transpose(0, 2, 3, 1), dtype)
    variables = jax.tree.map(lambda a: jnp.asarray(a, dtype), variables)
    model = get_model(name)
    if name == "converse_usrnet":
        out = model.apply(variables, x, jnp.asarray(data["kernel"][:, 0], dtype), int(data["sf"]))
    else:  # compiled once rather than run op by op (this file on CPU: 49 s -> 38 s)
        out = jax.jit(model.apply)(variables, x)
    assert out.dtype == dtype
    return np.asarray(out, np.float64).transpose(0, 3, 1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RELEASED))
def test_golden_forward_float32(name):
    data, state_dict = _golden(name)
    variables = from_torch(state_dict, name)
    out = _forward(name, data, variables, jnp.float32)
    ref = data["output"]
    assert out.shape == ref.shape
    err = np.abs(out - ref).max()
    assert err <= 2e-3, f"{name}: float32 max abs error {err:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RELEASED))
def test_golden_forward_float64(name):
    data, state_dict = _golden(name)
    variables = from_torch(state_dict, name)
    with jax.enable_x64(True):
        out = _forward(name, data, variables, jnp.float64)
    ref = data["output"]
    err = np.abs(out - ref).max()
    assert err <= 1e-9 * np.abs(ref).max(), f"{name}: float64 max abs error {err:.3g}"


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_checkpoint_loads_to_the_golden_variables(name):
    data, state_dict = _golden(name)
    model, variables = load(shared_path(f"data/weights/{name}.pth"))
    assert type(model) is RELEASED[name]
    assert sum(a.size for a in jax.tree.leaves(variables)) == int(data["param_count"])
    expected = from_torch(state_dict, name)
    assert jax.tree.structure(variables) == jax.tree.structure(expected)
    for got, want in zip(jax.tree.leaves(variables), jax.tree.leaves(expected)):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_infer_arch_and_exact_round_trip(name):
    _, state_dict = _golden(name)
    assert infer_arch(state_dict) == name
    back = to_torch(from_torch(state_dict, name), name)
    assert set(back) == set(state_dict)
    for key, value in state_dict.items():
        assert back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key], value)


def test_layouts_of_individual_tensors():
    _, sd = _golden("converse_usrnet")
    params = from_torch(sd, "converse_usrnet")["params"]
    np.testing.assert_array_equal(params["head"]["kernel"], sd["conv1.weight"][:, :, 0, 0].T)
    np.testing.assert_array_equal(params["kernel_net"]["fc3"]["kernel"], sd["kernelnet.fc3.weight"].T)
    block = params["blocks_2"]
    w = sd["p.m_body.2.conv1.3.weight"]  # (1, 128, 3, 3)
    assert block["spatial"]["kernel"].shape == (3, 3, 128)
    assert block["spatial"]["kernel"][0, 2, 5] == w[0, 5, 0, 2]
    np.testing.assert_array_equal(block["spatial"]["bias"], sd["p.m_body.2.conv1.3.bias"].reshape(-1))
    np.testing.assert_array_equal(block["norm2"]["scale"], sd["p.m_body.2.conv2.0.weight"])
    np.testing.assert_array_equal(block["alpha1"], sd["p.m_body.2.alpha1"].reshape(-1))
    np.testing.assert_array_equal(params["data"]["alpha"], sd["d.alpha"].reshape(-1))
    np.testing.assert_array_equal(params["kernel_proj_4"]["bias"], sd["convs.4.bias"])


def test_strict_mapping_lists_missing_unexpected_and_misshapen_keys():
    _, sd = _golden("converse_dncnn")
    bad = dict(sd)
    del bad["m_tail.0.bias"]
    bad["m_body.20.conv1.0.weight"] = np.ones(64, np.float32)
    bad["m_head.0.weight"] = np.ones((64, 1), np.float32)
    with pytest.raises(ValueError) as info:
        from_torch(bad, "converse_dncnn")
    message = str(info.value)
    assert "missing (1): ['m_tail.0.bias']" in message
    assert "unexpected (1): ['m_body.20.conv1.0.weight']" in message
    assert "misshapen (1): ['m_head.0.weight: got (64, 1), expected (64, 1, 1, 1)']" in message
    with pytest.raises(ValueError, match="valid names"):
        from_torch(sd, "converse_dncn")
    with pytest.raises(ValueError, match="missing .*blocks_3/norm1/scale"):
        params = from_torch(sd, "converse_dncnn")["params"]
        del params["blocks_3"]["norm1"]["scale"]
        to_torch({"params": params}, "converse_dncnn")


def _random_variables(name: str, **kwargs) -> dict:
    rng = np.random.default_rng(0)
    shapes = abstract_variables(get_model(name, **kwargs))
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)


@pytest.mark.parametrize("name", list_models())
def test_every_arch_round_trips_and_is_recognised(name):
    variables = _random_variables(name)
    state_dict = to_torch(variables, name)
    back = from_torch(state_dict, name)
    assert jax.tree.structure(back) == jax.tree.structure(variables)
    for got, want in zip(jax.tree.leaves(back), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(got, want)
    if name in ("conv_dncnn", "convt_dncnn"):
        with pytest.raises(ValueError, match="pass arch explicitly"):
            infer_arch(state_dict)
    else:
        assert infer_arch(state_dict) == name


def test_batchnorm_buffers_are_optional_as_a_group():
    variables = _random_variables("dncnn", features=4, num_layers=4)
    state_dict = to_torch(variables, "dncnn", features=4, num_layers=4)
    assert state_dict["model.3.num_batches_tracked"].shape == ()
    assert state_dict["model.3.running_var"].shape == (4,)
    assert "model.8.weight" in state_dict  # tail conv after 2 conv-BN-ReLU layers
    grads = {k: v for k, v in state_dict.items() if "running" not in k and "num_batches" not in k}
    assert set(from_torch(grads, "dncnn", features=4, num_layers=4)) == {"params"}
    partial = {k: v for k, v in state_dict.items() if k != "model.6.running_mean"}
    with pytest.raises(ValueError, match="missing \\(1\\): \\['model.6.running_mean'\\]"):
        from_torch(partial, "dncnn", features=4, num_layers=4)


def test_store_round_trip_through_load(tmp_path):
    kwargs = {"features": 8, "num_blocks": 2}
    variables = _random_variables("converse_dncnn", **kwargs)
    store = save_variables(
        tmp_path / "small", variables, arch="converse_dncnn", metadata={"model_kwargs": kwargs}
    )
    model, loaded = load(store)
    assert type(model) is ConverseDnCNN and (model.features, model.num_blocks) == (8, 2)
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="hold a 'converse_dncnn' network"):
        load(store, arch="conversenet")
    with pytest.raises(ValueError, match="misshapen"):
        load(store, features=16)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent")


def test_released_weights_survive_the_variable_store(tmp_path):
    model, variables = load(shared_path("data/weights/conversenet.pth"))
    save_variables(tmp_path / "cn", variables, arch="conversenet")
    model2, variables2 = load(tmp_path / "cn")
    assert model2 == model
    for got, want in zip(jax.tree.leaves(variables2), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(got, want)
