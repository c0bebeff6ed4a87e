"""The programs: the ``converse-jax`` command (:mod:`~converse_jax.cli.main`, its argument grammar
in :mod:`~converse_jax.cli.args`), training (:mod:`~converse_jax.cli.train`, also ``train.py``),
the demo (:mod:`~converse_jax.cli.demo`, ``make demo``) and the showcase figure
(:mod:`~converse_jax.cli.showcase`). Internal: the programs are used from the shell.
"""
