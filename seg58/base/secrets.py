"""Credentials are never written or printed. A password in a URI on the command line
(`tracking.uri=postgresql://u:pw@host/db`, `hydra.sweeper.storage=...`, `--tracking-uri`) or in
$MLFLOW_TRACKING_URI is moved, before Hydra sees the command line, into the environment variable
its client reads ($PGPASSWORD for PostgreSQL, $MLFLOW_TRACKING_USERNAME/PASSWORD for an MLflow
server), which local and SLURM jobs inherit: so it is in no saved config, override list, summary,
MLflow param or tag, log line or error message. Whatever still carries one is masked on output
(`mask`, and every log record)."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from urllib.parse import unquote

# scheme://user:password@ ; the password part stops at the last @ before the host
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/:@\s'\"]*):(?P<password>[^/\s'\"]*)@")
# where each kind of store's client looks for its password (None: it has no such place we can use)
PASSWORD_ENV = {"postgresql": "PGPASSWORD", "postgres": "PGPASSWORD", "http": "MLFLOW_TRACKING_PASSWORD",
                "https": "MLFLOW_TRACKING_PASSWORD"}
USERNAME_ENV = {"http": "MLFLOW_TRACKING_USERNAME", "https": "MLFLOW_TRACKING_USERNAME"}


def mask(text: str) -> str:
    """Every URI password in `text` as ***."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def has_password(text: str) -> bool:
    return bool(_USERINFO.search(text))


def _moved(match: re.Match, environ: MutableMapping[str, str], notes: list[str], where: str) -> str:
    scheme = match["scheme"][:-3].split("+", 1)[0].lower()
    env = PASSWORD_ENV.get(scheme)
    if env is None:  # no standard place for it: left in, masked on output, and said
        notes.append(f"{where}: a password in a {scheme}:// URI cannot be kept out of saved configs; "
                     "use the driver's own credentials file instead")
        return match[0]
    password, user = unquote(match["password"]), unquote(match["user"])
    if environ.get(env) not in (None, password) and any(env in n for n in notes):
        raise ValueError(f"{where}: a second, different password for ${env}; give one password per kind of store")
    environ[env] = password
    notes.append(f"{where}: the password is kept out of every file and log, in ${env} for this process and "
                 f"its jobs (set ${env}{' or ~/.pgpass' if env == 'PGPASSWORD' else ''} yourself next time)")
    if scheme in USERNAME_ENV:  # an MLflow server: the user goes too (requests would send it without a password)
        environ[USERNAME_ENV[scheme]] = user
        return match["scheme"]
    return f"{match['scheme']}{match['user']}@"


def move_passwords(argv: list[str], environ: MutableMapping[str, str], uri_env: str = "MLFLOW_TRACKING_URI"
                   ) -> tuple[list[str], list[str]]:
    """(argv with every URI password taken out, one note per password moved); `environ` (e.g.
    os.environ) receives the passwords and has its `uri_env` URI cleaned the same way."""
    notes: list[str] = []
    out = []
    for arg in argv:
        where = arg.split("=", 1)[0] if "=" in arg and "://" in arg.split("=", 1)[1] else "an argument"
        out.append(_USERINFO.sub(lambda m, w=where: _moved(m, environ, notes, w), arg))
    if has_password(environ.get(uri_env, "")):
        environ[uri_env] = _USERINFO.sub(lambda m: _moved(m, environ, notes, f"${uri_env}"), environ[uri_env])
    return out, notes


def mask_log_records() -> None:
    """Every log record's message masked, whatever handler (console, file, SLURM log) writes it."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "masks_secrets", False):
        return

    def masked(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it, as logging always did
            return record
        if "://" in message and has_password(message):
            record.msg, record.args = mask(message), None
        return record

    masked.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked)
