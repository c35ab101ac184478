"""Everything MLflow, and the only package that imports it: the store (where, creating it safely,
records written from outside a run), the run logger callback, the MLflow Model and registry, a
run's dataset lineage, leaderboards, UI links, a sweep's parent run, system metrics, a search's
study plots, eval logging, and resolving a run or model URI back into config + checkpoint. May
import build, engine, modeling, data and base; never sweep (its sibling) or commands."""
