"""seg58: a Hydra-composed experiment sweeper for segmenting damage in analogue media.

Layers, lowest first (docs/architecture.md; the import contracts in pyproject.toml enforce them):
base -> data -> modeling -> engine (the plain-PyTorch core) -> build (config -> objects) ->
tracking | sweep (MLflow; the generic sweeper) -> commands -> cli."""
