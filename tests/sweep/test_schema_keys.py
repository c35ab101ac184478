"""The sweeper's keys come from its schema dataclass (seg58/sweep/schema.py), declared once."""

from __future__ import annotations


def test_the_sweepers_keys_are_its_schemas_and_each_search_key_reaches_the_search():
    """The sweeper takes exactly its schema's keys (seg58/sweep/schema.py) and hands the search
    keys to Search, which must take each of them; any other key is refused, naming the valid ones."""
    import inspect

    from seg58.sweep.schema import SEARCH_KEYS, SWEEPER_KEYS
    from seg58.sweep.search import Search
    from seg58.sweep.sweeper import GridOrSearchSweeper

    assert set(SEARCH_KEYS) <= set(inspect.signature(Search.__init__).parameters)
    sweeper = GridOrSearchSweeper(**SWEEPER_KEYS, n_trial=3)
    assert set(sweeper.search) == set(SEARCH_KEYS)
    (problem,) = sweeper.problems()
    assert problem.startswith("hydra.sweeper.n_trial: not a key of the seg58 sweeper (did you mean n_trials?)")
    assert problem.endswith("valid: " + ", ".join(sorted(SWEEPER_KEYS)))
