"""Small pieces every layer uses, with no JAX model code: image files and captioned rows
(:mod:`~converse_jax.utils.images`), atomic writes (:mod:`~converse_jax.utils.atomic`), argument
checks (:mod:`~converse_jax.utils.validate`) and the host-memory policy of the programs
(:mod:`~converse_jax.utils.host_memory`). Internal: import from the modules themselves.
"""
