"""The optimisation pieces: train step, EMA, learning-rate schedule, gradient clipping."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from converse_jax.train.losses import l1_loss
from converse_jax.models import get_model
from converse_jax.train import (
    apply_model,
    check_config,
    create_mesh,
    create_train_state,
    ema_decay_at,
    ema_update,
    global_batch,
    init_variables,
    lr_schedule,
    make_optimizer,
    make_train_step,
    replicated_sharding,
    to_host,
)


def _fresh_state(variables, tx):
    """A train state owning copies of ``variables`` (the train step donates its input state)."""
    return create_train_state(jax.tree.map(jnp.copy, variables), tx, jax.random.PRNGKey(1))


def _denoise_batch(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0, 1, (n, size, size, 1)).astype(np.float32)
    clean = (clean + np.roll(clean, 1, 1) + np.roll(clean, 1, 2)) / 3  # some spatial correlation
    noisy = clean + rng.normal(0, 25 / 255, clean.shape).astype(np.float32)
    return {"input": noisy, "target": clean}


@pytest.fixture(scope="module")
def tiny():
    """A small Converse-DnCNN, a fixed batch, its variables, the optimizer and the compiled step."""
    mesh = create_mesh()
    model = get_model("converse_dncnn", features=8, num_blocks=1)
    batch = _denoise_batch()
    variables = init_variables(model, "denoise", batch, jax.random.PRNGKey(0), mesh)
    tx = make_optimizer(2e-3, (), 0.5)
    step = make_train_step(model, tx, task="denoise", ema_decay=0.5, mesh=mesh)
    return mesh, model, batch, variables, tx, step


def test_loss_decreases_on_a_fixed_batch(tiny):
    mesh, model, batch, variables, tx, step = tiny
    state = _fresh_state(variables, tx)
    gbatch = global_batch(batch, mesh)
    losses = []
    for _ in range(12):
        state, metrics = step(state, gbatch)
        losses.append(float(to_host(metrics["loss"])))
    assert int(to_host(state.step)) == 12
    assert losses[-1] < 0.85 * losses[0], losses
    # The EMA moved from the initialisation towards the parameters but is not equal to them.
    p, e = jax.tree.leaves(state.params)[0], jax.tree.leaves(state.ema_params)[0]
    p0 = jax.tree.leaves(variables["params"])[0]
    assert not np.allclose(p, e) and not np.allclose(p0, e)


def test_train_step_compiles_once_across_steps():
    """A replicated state and same-shaped batches: one trace (the optimizer update runs once per trace)."""
    mesh = create_mesh()
    model = get_model("converse_dncnn", features=4, num_blocks=1)
    batch = _denoise_batch(n=2, size=8)
    variables = init_variables(model, "denoise", batch, jax.random.PRNGKey(0), mesh)
    base = make_optimizer(1e-3, (), 0.5)
    tx = optax.GradientTransformation(base.init, chex.assert_max_traces(base.update, n=1))
    step = make_train_step(model, tx, task="denoise", ema_decay=0.5, mesh=mesh)
    state = jax.device_put(_fresh_state(variables, tx), replicated_sharding(mesh))
    for seed in range(3):
        state, _ = step(state, global_batch(_denoise_batch(n=2, size=8, seed=seed), mesh))
    assert int(to_host(state.step)) == 3


def test_train_step_matches_manual_update(tiny):
    mesh, model, batch, variables, tx, step = tiny

    @jax.jit
    def manual(params):
        loss, grads = jax.value_and_grad(
            lambda p: l1_loss(model.apply({"params": p}, batch["input"]), batch["target"])
        )(params)
        updates, _ = tx.update(grads, tx.init(params), params)
        new = optax.apply_updates(params, updates)
        return loss, new, ema_update(params, new, 0.5, 1), optax.tree.norm(grads)

    loss, want, want_ema, grad_norm = manual(variables["params"])
    new, metrics = step(_fresh_state(variables, tx), global_batch(batch, mesh))
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(new.ema_params), jax.tree.leaves(want_ema)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["grad_norm"]), float(grad_norm), rtol=1e-5)
    # apply_model is the network call of the step, in evaluation mode here.
    pred, stats = apply_model(model, {"params": want}, {"input": batch["input"]}, "denoise", train=False)
    np.testing.assert_allclose(pred, model.apply({"params": want}, batch["input"]), rtol=1e-6)
    assert stats == {}


def test_batchnorm_model_updates_batch_stats():
    mesh = create_mesh()
    model = get_model("dncnn", features=4, num_layers=3)
    batch = _denoise_batch(n=2, size=8)
    variables = init_variables(model, "denoise", batch, jax.random.PRNGKey(0), mesh)
    tx = make_optimizer(1e-3, (), 0.5)
    state = _fresh_state(variables, tx)
    new, _ = make_train_step(model, tx, task="denoise", ema_decay=0.0, mesh=mesh)(state, global_batch(batch, mesh))
    old_mean = jax.tree.leaves(variables["batch_stats"])[0]
    new_mean = jax.tree.leaves(new.batch_stats)[0]
    assert old_mean.shape == new_mean.shape and not np.allclose(old_mean, new_mean)
    # ema_decay 0: the average is the current parameters.
    for a, b in zip(jax.tree.leaves(new.ema_params), jax.tree.leaves(new.params)):
        np.testing.assert_array_equal(a, b)


def test_ema_math():
    ema = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(4.0)}
    params = {"w": jnp.array([3.0, 0.0]), "b": jnp.array(0.0)}
    # Warm-up: d = min(decay, (1 + t) / (10 + t)).
    np.testing.assert_allclose(float(ema_decay_at(0.999, 1)), 2 / 11, rtol=1e-6)
    np.testing.assert_allclose(float(ema_decay_at(0.9, 1000)), 0.9, rtol=1e-6)
    d = 2 / 11
    out = ema_update(ema, params, 0.999, 1)
    np.testing.assert_allclose(out["w"], d * np.array([1.0, 2.0]) + (1 - d) * np.array([3.0, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(out["b"], d * 4.0, rtol=1e-6)
    out = ema_update(ema, params, 0.9, 10_000)
    np.testing.assert_allclose(out["w"], [0.9 * 1 + 0.1 * 3, 0.9 * 2], rtol=1e-6)
    out = ema_update(ema, params, 0.0, 5)
    np.testing.assert_array_equal(out["w"], params["w"])
    with pytest.raises(ValueError, match="ema_decay"):
        ema_update(ema, params, 1.0, 1)


def test_schedule_halves_at_milestones():
    s = lr_schedule(1e-4, (3, 5), 0.5)
    got = [float(s(c)) for c in range(7)]
    np.testing.assert_allclose(got, [1e-4] * 3 + [5e-5] * 2 + [2.5e-5] * 2, rtol=1e-6)
    # Inside Adam: with a constant gradient Adam's step is lr * g/|g| (bias-corrected), so the size
    # of update k shows the rate it used.
    tx = make_optimizer(1e-2, (2,), 0.5)

    @jax.jit
    def update_sizes(params):
        opt_state = tx.init(params)
        sizes = []
        for _ in range(4):
            upd, opt_state = tx.update(jnp.ones(3), opt_state, params)
            sizes.append(jnp.abs(upd[0]))
        return jnp.stack(sizes)

    np.testing.assert_allclose(update_sizes(jnp.zeros(3)), [1e-2, 1e-2, 5e-3, 5e-3], rtol=1e-4)
    for bad in ((5, 3), (0,), (2, 2)):
        with pytest.raises(ValueError, match="lr_milestones"):
            lr_schedule(1e-4, bad, 0.5)


def test_gradient_clipping():
    g1 = {"w": jnp.array([30.0, 40.0])}  # norm 50 -> clipped to norm 1
    g2 = {"w": jnp.array([0.3, -0.4])}  # norm 0.5 -> unchanged
    params = {"w": jnp.zeros(2)}

    def run(tx, grads):
        @jax.jit
        def updates(grads):
            state = tx.init(params)
            out = []
            for g in grads:
                upd, state = tx.update(g, state, params)
                out.append(upd["w"])
            return out

        return updates(grads)

    clipped = run(make_optimizer(1e-3, (), 0.5, grad_clip_norm=1.0), [g1, g2])
    manual = run(optax.adam(1e-3), [{"w": g1["w"] / 50.0}, g2])
    plain = run(make_optimizer(1e-3, (), 0.5), [g1, g2])
    for a, b in zip(clipped, manual):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(clipped[1], plain[1])
    with pytest.raises(ValueError, match="grad_clip_norm"):
        make_optimizer(1e-3, (), 0.5, grad_clip_norm=-1.0)


def test_check_config_names_the_field():
    import ml_collections

    with pytest.raises(ValueError, match="missing"):
        check_config(ml_collections.ConfigDict({"model": "dncnn"}))


def test_sr_validation_reports_y_psnr():
    """Training-time validation of RGB SR scores as ``converse-jax evaluate``: RGB and Y (the paper's) PSNR/SSIM."""
    from converse_jax.protocol import single2uint
    from converse_jax.tasks import get_task
    from converse_jax.train import evaluate

    rng = np.random.default_rng(0)
    target = rng.random((24, 24, 3), np.float32)
    eval_set = [{"name": "a", "input": target[::2, ::2], "target": target}]
    nearest = lambda variables, inputs: jnp.repeat(jnp.repeat(inputs["input"], 2, axis=1), 2, axis=2)
    result = evaluate(nearest, {}, eval_set, task="sr", scale=2, mesh=create_mesh())
    want = get_task("sr").scores(single2uint(np.repeat(np.repeat(target[::2, ::2], 2, 0), 2, 1)), single2uint(target), 2)
    assert sorted(result) == ["per_image", "psnr", "psnr_y", "ssim", "ssim_y"]
    assert result["psnr_y"] == want["psnr_y"] != result["psnr"]
