"""Train a ConverseNet (or a baseline) from a config file.

    python train.py --config=configs/converse_dncnn.py --workdir=runs/converse_dncnn \
        [--config.batch_size=128 --config.data.source=folder --config.data.train_dir=...]

Any config field can be overridden with ``--config.FIELD=VALUE``.  The run resumes from the latest
checkpoint in ``--workdir`` and writes ``metrics.jsonl`` and TensorBoard events there; see
:mod:`converse_jax.train.loop`.  Multi-host jobs: launch one process per host with
``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` (or the environment variables
``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``); Slurm, Open MPI and
Cloud TPU pods are detected automatically.
"""

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file (configs/NAME.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and TensorBoard events.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 in a multi-process job.")
flags.DEFINE_integer("num_processes", None, "Number of processes in a multi-process job.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process job.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # Imported here so that flag errors are reported without loading JAX and the data stack.
    from converse_jax.train import TrainingError, maybe_initialize_distributed, quiet_orbax_logs, train_and_evaluate

    quiet_orbax_logs()
    maybe_initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except TrainingError as error:  # a non-finite step or no intact checkpoint: one line, exit status 1
        raise SystemExit(f"train.py: error: {error}") from None


if __name__ == "__main__":
    app.run(main)
