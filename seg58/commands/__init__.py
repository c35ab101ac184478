"""One module per command (`seg58 train|check-data|bench|evaluate|predict|export|report|rerun|
status|collect|dashboard|fetch-weights|import-artefact|augment-artefact`), each the glue between the
command line and the layers below, plus sweep_hooks.py: seg58's training plugged into the generic
sweeper. May import every layer below (tracking, sweep, build, engine, modeling, data, base); the
command modules that Hydra runs keep their heavy imports inside functions, so a typo in an
override is refused before torch is loaded."""
