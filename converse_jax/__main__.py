"""``python -m converse_jax ...``: the ``converse-jax`` command line (:mod:`converse_jax.cli.main`)."""

import sys

from converse_jax.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
