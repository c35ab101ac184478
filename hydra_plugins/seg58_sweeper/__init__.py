"""seg58's Hydra plugins: only what Hydra must discover (the sweeper and launcher classes, and their
config schemas registered); each class delegates to seg58.sweep. Nothing heavy is imported here: Hydra scans
this package on every start of every app."""
