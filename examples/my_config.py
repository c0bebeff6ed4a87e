"""The training config of the network in ``examples/my_network.py``: its recipe, shortened.

    PYTHONPATH=examples converse-jax train --config=examples/my_config.py --workdir=runs/mine

Importing the network's module registers it; ``converse_jax.configs.zoo.get_config`` then builds
its recipe from its record and its task (gray denoising at sigma 25, the embedded sample photos)
like the zoo's. The run records the module (``runs/mine/config.json``: ``model_module``), so
``converse-jax evaluate/restore/export --weights runs/mine`` find the network again.
"""

import my_network  # noqa: F401  (registers "my_network")

from converse_jax.configs.zoo import get_config as recipe


def get_config():
    """The recipe of ``my_network``, for a short run on a CPU."""
    config = recipe("my_network")
    config.num_train_steps = 400
    config.lr_milestones = (300,)
    config.learning_rate = 1e-3
    config.batch_size = 8
    config.eval_every_steps = 100
    config.checkpoint_every_steps = 100
    config.log_every_steps = 25
    return config
