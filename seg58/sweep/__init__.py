"""The sweeper any Hydra app can use (`hydra/sweeper=seg58`): grid and Optuna search with one
bookkeeping (sweep_summary.json), a job pool over any launcher, submitit launchers that survive
lost jobs and give each local job its own GPU, detach into a SLURM driver, study and trial handle,
status/collect, and the SweepHooks interface through which an app adds its config checks and
tracking. Its keys are declared once (schema.py) and the private Hydra and submitit APIs it relies on sit in
private_apis.py. Generic: may import base and config.user_errors (and hydra, omegaconf, optuna, submitit);
never torch, mlflow, data, modeling, engine, tracking or commands. Keep module-level imports light:
Hydra imports the plugin, and through it this package, on every start."""
