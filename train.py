"""Train a ConverseNet (or a baseline) from a config: the same program as ``converse-jax train``.

    python train.py --config=configs/zoo.py:converse_dncnn --workdir=runs/converse_dncnn \
        [--config.batch_size=128 --config.data.source=folder --config.data.train_dir=...]

``--config`` takes a config file or a packaged recipe's name (``--config=converse_dncnn``); any
field can be overridden with ``--config.FIELD=VALUE``; paths are relative to the current
directory.  Flags, resuming and multi-host jobs: :mod:`converse_jax.cli.train`.
"""

from converse_jax.cli.train import main

if __name__ == "__main__":
    main(prog="train.py")
