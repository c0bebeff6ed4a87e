"""Running trained networks on images: the checked network as a function
(:mod:`~converse_jax.inference.restorer`), x8 self-ensemble and tiling
(:mod:`~converse_jax.inference.tiling`), restoring image files (:mod:`~converse_jax.inference.restore`),
scoring a test set by the paper's protocol (:mod:`~converse_jax.inference.evaluate`), serialized
``jax.export`` artifacts (:mod:`~converse_jax.inference.export`), and what a batch tool does around
each image (:mod:`~converse_jax.inference.batch`).
"""
