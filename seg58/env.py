"""Environment variables the sweeper sets for the jobs it launches (one name, one place).

Kept free of heavy imports: Hydra imports the sweeper plugin on every start."""

CONCURRENT_JOBS_ENV = "SEG58_CONCURRENT_JOBS"  # local jobs running side by side share the CPUs
PARENT_RUN_ENV = "SEG58_PARENT_RUN_ID"  # jobs nest their MLflow run under the sweep's run ...
PARENT_EXPERIMENT_ENV = "SEG58_PARENT_EXPERIMENT"  # ... when they log to the same experiment
