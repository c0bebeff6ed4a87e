"""The jitted train step, the model call, and the validation (predict + the task's metrics).

The task (``converse_jax.models.MODELS[name].task``, a :class:`converse_jax.tasks.Task`) decides
how the network is called (:meth:`~converse_jax.tasks.Task.apply`: ``apply(variables, x)``, or
``apply(variables, x, kernel, 1)`` for non-blind deblurring with ``batch['kernel']`` (B, k, k)),
and what validation reports (:meth:`~converse_jax.tasks.Task.scores`: PSNR/SSIM with the task's
border, plus the luma scores of RGB SR).  A model with BatchNorm (``dncnn``) takes ``train=``
and keeps ``batch_stats``.

Loss: ``converse_jax.train.losses.l1_loss(prediction, target)`` -- the mean absolute error over the
global batch, so the gradient of one jitted step over a sharded batch equals the single-device
gradient (XLA inserts the all-reduce).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from converse_jax.train.losses import l1_loss
from converse_jax.protocol.degradations import single2uint
from converse_jax.tasks import get_task, mean_scores, score_images, takes_train_flag
from converse_jax.train.mesh import DATA_AXIS, batch_sharding, replicate, replicated_sharding, to_host
from converse_jax.train.optim import ema_update
from converse_jax.train.state import TrainState

PyTree = Any


def apply_model(
    model: nn.Module,
    variables: dict[str, PyTree],
    batch: dict[str, jax.Array],
    task: str,
    *,
    train: bool,
    rng: jax.Array | None = None,
) -> tuple[jax.Array, PyTree]:
    """Runs ``model`` on ``batch['input']`` (NHWC float32) with the task's call convention.

    Args:
      model: a registry network.
      variables: ``{'params': ..., ['batch_stats': ...]}``.
      batch: ``'input'`` (B, h, w, C) and, for ``'deblur_nonblind'``, ``'kernel'`` (B, k, k).
      task: a task name of :data:`converse_jax.tasks.TASKS`.
      train: training mode (BatchNorm uses and updates batch statistics).
      rng: optional raw key for a ``'dropout'`` stream.

    Returns:
      ``(prediction (B, H, W, C_out), new batch_stats)``; the second is the updated running
      statistics when training a BatchNorm model, else ``variables.get('batch_stats', {})``.

    Example:
      A DnCNN (it has BatchNorm) on a batch of two 8x8 gray patches:

      >>> import jax, numpy as np
      >>> from converse_jax.models import get_model
      >>> from converse_jax.train.mesh import create_mesh
      >>> model = get_model("dncnn", features=4, num_layers=3)
      >>> batch = {"input": np.random.default_rng(0).random((2, 8, 8, 1), np.float32)}
      >>> variables = init_variables(model, "denoise", batch, jax.random.PRNGKey(0), create_mesh())
      >>> out, stats = apply_model(model, variables, batch, "denoise", train=True)
      >>> out.shape, jax.tree.map(np.shape, stats)
      ((2, 8, 8, 1), {'body_0': {'bn': {'mean': (4,), 'var': (4,)}}})
      >>> old = variables["batch_stats"]["body_0"]["bn"]["mean"]
      >>> bool((stats["body_0"]["bn"]["mean"] != old).any())  # training moved the running means
      True
      >>> apply_model(model, variables, batch, "denoise", train=False)[1] is variables["batch_stats"]
      True
      >>> apply_model(model, variables, batch, "deblur_nonblind", train=False)
      Traceback (most recent call last):
      ...
      ValueError: batch must hold 'kernel' (B, k, k) for a non-blind deblurring model
    """
    task = get_task(task)
    if task.takes_kernel and "kernel" not in batch:
        raise ValueError("batch must hold 'kernel' (B, k, k) for a non-blind deblurring model")
    x, kernel = batch["input"], batch.get("kernel")
    kwargs: dict[str, Any] = {} if rng is None else {"rngs": {"dropout": rng}}
    stats = variables.get("batch_stats", {})
    if train and stats:
        out, updated = task.apply(model, variables, x, kernel, train=True, mutable=["batch_stats"], **kwargs)
        return out, updated["batch_stats"]
    return task.apply(model, variables, x, kernel, train=train, **kwargs), stats


def init_variables(
    model: nn.Module, task: str, example: dict[str, np.ndarray], rng: jax.Array, mesh: Mesh
) -> dict[str, PyTree]:
    """Initialises the model on one example batch; variables come back replicated over ``mesh``.

    Args:
      model: a registry network.
      task: a task name of :data:`converse_jax.tasks.TASKS` (decides the call, see the module docstring).
      example: ``'input'`` (B, h, w, C) [and ``'kernel'`` (B, k, k)] of the shapes the model will
        see (only shapes and dtypes matter).
      rng: raw PRNG key for the ``'params'`` (and ``'dropout'``) streams.
      mesh: the device mesh.

    Returns:
      ``{'params': ..., ['batch_stats': ...]}`` of replicated global arrays.

    Example:
      >>> import jax, numpy as np
      >>> from converse_jax.models import get_model
      >>> from converse_jax.train.mesh import create_mesh
      >>> model = get_model("converse_dncnn", features=4, num_blocks=1)
      >>> example = {"input": np.zeros((2, 8, 8, 1), np.float32)}  # only shapes and dtypes matter
      >>> variables = init_variables(model, "denoise", example, jax.random.PRNGKey(0), create_mesh())
      >>> sorted(variables), sorted(variables["params"]), variables["params"]["head"]["kernel"].shape
      (['params'], ['blocks_0', 'head', 'tail'], (1, 4))
      >>> all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(variables))
      True
    """
    def init(key):
        params_key, dropout_key = jax.random.split(key)
        args = get_task(task).network_args(example["input"], example.get("kernel"))
        kwargs = {"train": False} if takes_train_flag(model) else {}
        return model.init({"params": params_key, "dropout": dropout_key}, *args, **kwargs)

    variables = jax.jit(init, out_shardings=replicated_sharding(mesh))(rng)
    return {k: v for k, v in variables.items()}


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    task: str,
    ema_decay: float,
    mesh: Mesh,
    grad_accum_steps: int = 1,
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
    """One jitted optimisation step over the mesh; the input state is donated.

    ``step(state, batch) -> (new_state, metrics)``: L1 loss of the model's prediction for
    ``batch['input']`` against ``batch['target']`` (float32 NHWC, sharded on ``'data'``),
    gradient, optimizer update, EMA update (:func:`converse_jax.train.optim.ema_update` with the
    new step), rng split.  ``metrics`` = ``{'loss', 'grad_norm', 'finite'}``: float32 scalars
    (the pre-clipping global gradient norm) and a bool, loss and gradient norm both finite.  A
    step that is not finite (a NaN or infinity in the loss or in any gradient) leaves
    ``params``, ``batch_stats``, ``opt_state`` and ``ema_params`` as they were (``step`` and
    ``rng`` advance); :mod:`converse_jax.train.faults` decides what the run does about it.
    State and metrics are replicated.

    ``batch``: ``'input'`` (B, h, w, C), ``'target'`` (B, H, W, C) (H = scale * h for SR) and
    for ``'deblur_nonblind'`` ``'kernel'`` (B, k, k), B a multiple of the device count times
    ``grad_accum_steps`` (e.g. from :func:`converse_jax.train.mesh.global_batch`).  Pass the
    state replicated over ``mesh`` (as the returned one is), else the second call compiles the
    step again.

    Gradient accumulation (``grad_accum_steps`` = k > 1): the batch is split into k micro-batches
    of B/k (every device keeps B/(k·devices) examples of each), a ``jax.lax.scan`` runs the
    forward and backward pass of one micro-batch at a time, and the loss and gradients are the
    means of the k micro-batches' -- the global batch's mean loss and its gradient, up to float32
    rounding, with about 1/k of the activations alive at once.  One optimizer update per step, as
    without accumulation.  BatchNorm (``dncnn``) normalises each micro-batch by its own
    statistics, so its losses differ from the whole batch's; its running statistics move once per
    step by the mean of the k micro-batches' updates (the running mean as without accumulation,
    the running variance by the mean within-micro-batch variance).

    Example:
      Five steps of a tiny Converse-DnCNN on one batch of two 8x8 gray patches:

      >>> import jax, numpy as np
      >>> from converse_jax.models import get_model
      >>> from converse_jax.train import (
      ...     create_mesh, create_train_state, global_batch, make_optimizer, replicated_sharding)
      >>> model = get_model("converse_dncnn", features=4, num_blocks=1)
      >>> mesh = create_mesh()
      >>> rng = np.random.default_rng(0)
      >>> clean = rng.random((2, 8, 8, 1), np.float32)
      >>> noisy = clean + 0.1 * rng.standard_normal(clean.shape, np.float32)
      >>> batch = global_batch({"input": noisy, "target": clean}, mesh)
      >>> tx = make_optimizer(1e-2, milestones=[], decay=0.5)
      >>> variables = init_variables(model, "denoise", {"input": noisy}, jax.random.PRNGKey(0), mesh)
      >>> state = create_train_state(variables, tx, jax.random.PRNGKey(1))
      >>> state = jax.device_put(state, replicated_sharding(mesh))
      >>> train_step = make_train_step(model, tx, task="denoise", ema_decay=0.9, mesh=mesh)
      >>> losses = []
      >>> for _ in range(5):
      ...     state, metrics = train_step(state, batch)
      ...     losses.append(float(metrics["loss"]))
      >>> int(state.step), sorted(metrics), losses[-1] < losses[0]
      (5, ['finite', 'grad_norm', 'loss'], True)
      >>> bad = global_batch({"input": noisy * np.nan, "target": clean}, mesh)  # a NaN batch
      >>> params = jax.device_get(state.params)
      >>> state, metrics = train_step(state, bad)
      >>> bool(metrics["finite"]), int(state.step)  # reported; the update is skipped
      (False, 6)
      >>> all(jax.tree.leaves(jax.tree.map(np.array_equal, params, jax.device_get(state.params))))
      True
    """
    get_task(task)  # a known task
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}")

    if isinstance(grad_accum_steps, bool) or not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
        raise ValueError(f"grad_accum_steps must be a positive integer, got {grad_accum_steps!r}")

    def step(state: TrainState, batch: dict[str, jax.Array]):
        rng, dropout_rng = jax.random.split(state.rng)

        def loss_fn(params, micro_batch, key):
            variables = {"params": params}
            if state.batch_stats:
                variables["batch_stats"] = state.batch_stats
            pred, new_stats = apply_model(model, variables, micro_batch, task, train=True, rng=key)
            return l1_loss(pred, micro_batch["target"]), new_stats

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        if grad_accum_steps == 1:
            (loss, new_stats), grads = grad_fn(state.params, batch, dropout_rng)
        else:
            (loss, new_stats), grads = _accumulated(grad_fn, state.params, batch, dropout_rng, grad_accum_steps, mesh)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_step = state.step + 1
        updated = (params, new_stats, opt_state, ema_update(state.ema_params, params, ema_decay, new_step))
        kept = (state.params, state.batch_stats, state.opt_state, state.ema_params)
        params, new_stats, opt_state, ema_params = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), updated, kept
        )
        new_state = state.replace(
            step=new_step, params=params, batch_stats=new_stats, opt_state=opt_state, ema_params=ema_params, rng=rng
        )
        return new_state, {"loss": loss, "grad_norm": grad_norm, "finite": finite}

    repl = replicated_sharding(mesh)
    return jax.jit(
        step, in_shardings=(repl, batch_sharding(mesh)), out_shardings=(repl, repl), donate_argnums=0
    )


def _accumulated(grad_fn, params: PyTree, batch: dict[str, jax.Array], key: jax.Array, k: int, mesh: Mesh):
    """``grad_fn(params, micro_batch, key) -> ((loss, stats), grads)`` averaged over ``k`` micro-batches.

    Micro-batch ``i`` holds the examples ``b`` with ``b % k == i``: each device's block of B/devices
    examples splits into k equal parts, so every micro-batch stays spread over all devices.
    """
    size = batch["input"].shape[0]
    if size % (k * mesh.devices.size):
        raise ValueError(
            f"the batch of {size} must be a multiple of grad_accum_steps ({k}) x devices ({mesh.devices.size})"
        )
    split = NamedSharding(mesh, P(None, DATA_AXIS))

    def micro(x):  # (B, ...) -> (k, B/k, ...)
        x = jnp.swapaxes(x.reshape(size // k, k, *x.shape[1:]), 0, 1)
        return jax.lax.with_sharding_constraint(x, split)

    def body(total, xs):
        micro_batch, micro_key = xs
        return jax.tree.map(jnp.add, total, grad_fn(params, micro_batch, micro_key)), None

    first = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[: size // k], batch), key)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), first)
    total, _ = jax.lax.scan(body, zeros, (jax.tree.map(micro, batch), jax.random.split(key, k)))
    return jax.tree.map(lambda t: t / k, total)


def make_predict_fn(
    model: nn.Module, *, task: str, mesh: Mesh
) -> Callable[[dict[str, PyTree], dict[str, jax.Array]], jax.Array]:
    """Jitted inference ``predict(variables, inputs) -> output`` (evaluation mode).

    ``inputs``: ``'input'`` (B, h, w, C) and for ``'deblur_nonblind'`` ``'kernel'`` (B, k, k);
    everything replicated over the mesh (each device computes the whole image -- validation
    images differ in size, so they are not split).  Compiles once per input shape.  The output
    is ``(B, H, W, C_out)`` (``H = scale * h`` for SR), replicated.

    Example:
      >>> import jax, numpy as np
      >>> from converse_jax.models import get_model
      >>> from converse_jax.train.mesh import create_mesh, replicate
      >>> model = get_model("converse_dncnn", features=4, num_blocks=1)
      >>> mesh = create_mesh()
      >>> example = {"input": np.zeros((1, 8, 8, 1), np.float32)}
      >>> variables = init_variables(model, "denoise", example, jax.random.PRNGKey(0), mesh)
      >>> predict = make_predict_fn(model, task="denoise", mesh=mesh)
      >>> image = replicate(np.zeros((1, 12, 20, 1), np.float32), mesh)  # any size, not the training one
      >>> out = predict(variables, {"input": image})
      >>> out.shape, out.sharding.is_fully_replicated
      ((1, 12, 20, 1), True)
    """
    get_task(task)  # a known task

    def predict(variables, inputs):
        return apply_model(model, variables, inputs, task, train=False)[0]

    repl = replicated_sharding(mesh)
    return jax.jit(predict, in_shardings=(repl, repl), out_shardings=repl)


def evaluate(
    predict: Callable[[dict[str, PyTree], dict[str, jax.Array]], jax.Array],
    variables: dict[str, PyTree],
    eval_set: Sequence[dict[str, Any]],
    *,
    task: str,
    scale: int,
    mesh: Mesh,
) -> dict[str, Any]:
    """PSNR/SSIM of the network on full validation images, the evaluation protocol's way.

    Scored by :func:`converse_jax.tasks.score_images` (the loop ``converse-jax evaluate`` uses):
    each output is clipped to [0, 1], ×255, rounded to uint8 (``single2uint``) and compared with
    the uint8 target by the task's :meth:`~converse_jax.tasks.Task.scores` (PSNR/SSIM on RGB or
    gray with the task's border; for RGB SR also ``psnr_y``/``ssim_y``, the paper's metric).

    Args:
      predict: from :func:`make_predict_fn`.
      variables: model variables (usually the EMA parameters).
      eval_set: ``create_eval_set`` output: dicts with ``'name'``, ``'input'``, ``'target'``
        (HWC float32) and optionally ``'kernel'`` (k, k).

    Returns:
      ``{'psnr': mean dB, 'ssim': mean, ['psnr_y', 'ssim_y',] 'per_image': [(name, psnr, ssim), ...]}``.

    Example:
      With a stand-in "network" that returns its input, the scores are those of the noisy
      images themselves (sigma 25 Gaussian noise: about 20 dB).  Images must keep at least
      11x11 pixels after the border crop (SSIM's window).

      >>> import numpy as np
      >>> from converse_jax.train.mesh import create_mesh
      >>> rng = np.random.default_rng(0)
      >>> eval_set = []
      >>> for name in ("a", "b"):
      ...     clean = rng.random((12, 12, 1), np.float32)  # HWC in [0, 1]
      ...     noisy = clean + rng.normal(0, 25 / 255, clean.shape).astype(np.float32)
      ...     eval_set.append({"name": name, "input": noisy, "target": clean})
      >>> identity = lambda variables, inputs: inputs["input"]
      >>> result = evaluate(identity, {}, eval_set, task="denoise", scale=1, mesh=create_mesh())
      >>> round(result["psnr"], 1), 0 < result["ssim"] < 1, [row[0] for row in result["per_image"]]
      (20.9, True, ['a', 'b'])
    """
    if not eval_set:
        raise ValueError("eval_set must hold at least one image")
    task = get_task(task)

    def restore(ex: dict[str, Any]) -> np.ndarray:
        inputs = {"input": replicate(ex["input"][None].astype(np.float32), mesh)}
        if task.takes_kernel:
            inputs["kernel"] = replicate(ex["kernel"][None].astype(np.float32), mesh)
        return to_host(predict(variables, inputs))[0]

    examples = ({**ex, "truth": single2uint(np.asarray(ex["target"], np.float32))} for ex in eval_set)
    rows = list(score_images(task, restore, examples, scale=scale))
    per_image = [(row.name, row.scores["psnr"], row.scores["ssim"]) for row in rows]
    return {**mean_scores(rows), "per_image": per_image}
