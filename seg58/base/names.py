"""Names several layers must agree on, spelled once: files in a run or sweep folder, MLflow tag
keys, and the environment variables a sweep hands to the jobs it launches. Plain strings, no
imports: Hydra imports the sweeper plugin (and through it this module) on every start."""

# -- a run's folder (<output dir>/...) ------------------------------------------------------
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"  # full training state: resumable
BEST_CHECKPOINT = "best.pt"  # the best epoch's weights
RUN_ID_FILE = "mlflow_run_id"  # the MLflow run a job logs to (a requeued job continues it)
COMPLETED_MARKER = "COMPLETED"  # the run finished: `trainer.resume=auto` never picks it up again
VISUALS_DIR = "visuals"
PER_IMAGE_DIR = "per_image"  # <scope>/per_image_confusion.npz: one confusion matrix per image ...
PER_IMAGE_FILE = "per_image_confusion.npz"  # ... (scope `val`: the best epoch; `eval/<split>`: evaluate)

# -- a sweep's folder (multirun/<date>/<time>/...) ------------------------------------------
SUMMARY_FILE = "sweep_summary.json"  # every cell, from planned to ended (rewritten every few seconds) ...
EVENTS_FILE = "sweep_events.jsonl"  # ... and each change of a cell since, one line each (seg58/sweep/ledger.py)
RESULTS_FILE = "optimization_results.yaml"  # a finished search's best trial or Pareto front, as hydra-optuna-sweeper
SEARCH_STATE_FILE = "search.json"  # what `hydra.sweeper.resume` needs: the study, its space, the parent run
JOURNAL_FILE = "optuna.journal"  # the search's study (Optuna journal storage)
DRIVER_FILE = "driver.json"  # the SLURM driver job of a detached sweep
LOCK_FILE = ".driver.lock"  # held (flock) by the one process that drives the sweep ...
LOCK_OWNER_FILE = "driver_owner.json"  # ... which says here who it is (seg58/sweep/lock.py)
MULTIRUN_CONFIG = "multirun.yaml"

# -- MLflow tags ------------------------------------------------------------------------------
PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag
SWEEP_PARENT_TAG = "sweep.parent_run_id"
CELL_STATUS_TAG = "sweep.cell_status"  # a lost run's cell status in the sweep summary (INTERRUPTED, ...)
STOP_KIND_TAG = "stop.kind"  # why a run ended early (seg58/base/stop.py) ...
STOP_EPOCH_TAG = "stop.epoch"  # ... and after which epoch (1-based)
STOP_REASON_TAG = "stop_reason"  # the same, as a sentence
SEARCH_STUDY_TAG = "search.study"
SEARCH_TRIAL_TAG = "search.trial"

# -- environment a sweep sets for its jobs -----------------------------------------------------
CONCURRENT_JOBS_ENV = "SEG58_CONCURRENT_JOBS"  # local jobs running side by side share the CPUs
PARENT_RUN_ENV = "SEG58_PARENT_RUN_ID"  # jobs nest their MLflow run under the sweep's run ...
PARENT_EXPERIMENT_ENV = "SEG58_PARENT_EXPERIMENT"  # ... when they log to the same experiment
STUDY_ENV = "SEG58_STUDY"  # a search's study (storage, name, pruner, metric) for its trials
