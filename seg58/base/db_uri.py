"""Database URIs as SQLAlchemy reads them. A plain `postgresql://` means psycopg (3) to SQLAlchemy
2.1, while `pip install 'seg58[postgres]'` (and most clusters) have psycopg2: the plain scheme is
given the driver that is installed, and one line says what to install when none is."""

from __future__ import annotations

import importlib.util

from seg58.base.errors import UsageError

# the driver modules in the order they are preferred, and the dialect+driver scheme of each
POSTGRES_DRIVERS = (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2"))
PLAIN_POSTGRES = ("postgresql", "postgres")


def with_installed_driver(uri: str, key: str) -> str:
    """`uri` with `postgresql://` (or `postgres://`) spelled for the installed driver; any other URI
    as it is. `key`: the setting it came from, for the error."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in PLAIN_POSTGRES:
        return uri
    for module, dialect in POSTGRES_DRIVERS:
        if importlib.util.find_spec(module) is not None:
            return f"{dialect}://{rest}"
    raise UsageError(f"{key}: no PostgreSQL driver is installed for {scheme}://: "
                     "pip install 'seg58[postgres]' (psycopg2), or psycopg[binary]")
