"""Config -> objects: the structured-config schema (typed keys and enums, refused at composition),
the semantic config checks and weights checks every run and every sweep cell passes before any
expensive work, the factory that turns config sections into the core's objects, and the
translation of bad-input errors into one message and a non-zero exit. The Hydra/OmegaConf edge of
the core. May import base, data, modeling, engine, hydra and omegaconf; never mlflow, optuna,
submitit."""
