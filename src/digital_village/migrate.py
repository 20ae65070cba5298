"""Apply and check the Alembic migrations shipped inside the package."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from digital_village.db import reason_of
from digital_village.errors import NotReady


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", "digital_village:migrations")
    if url is not None:
        # ConfigParser treats % as interpolation; URLs may contain escaped characters.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migrations shipped with this version of the software (comma-separated).

    Each capability (ledger, parcels, ...) keeps its own branch of migrations off the
    foundation, declaring with ``depends_on`` the branches it builds on, so there may be
    several heads.
    """
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads, "the package ships no migrations"
    return ",".join(sorted(heads))


def upgrade(connection: Connection) -> None:
    """Bring the database on this connection to the newest migrations."""
    command.upgrade(alembic_config(connection=connection), "heads")


def current_revision(connection: Connection) -> str | None:
    """The migrations the database is at (comma-separated), or None for an empty database."""
    heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def check_current(bind: Engine | Connection) -> str:
    """Raise NotReady with a helpful message unless the database is fully migrated."""
    try:
        if isinstance(bind, Connection):
            current = current_revision(bind)
        else:
            with bind.connect() as connection:
                current = current_revision(connection)
    except Exception as error:  # the database itself is unreachable: say so plainly
        raise NotReady(f"cannot reach the database: {reason_of(error)}") from error
    head = head_revision()
    if current is None:
        raise NotReady(
            "the database has not been initialised (no migrations applied); run `dv init` first"
        )
    if current != head and not _covers_every_head(current):
        raise NotReady(
            f"the database is at migration {current}, but this version needs {head}; "
            "run `dv init` to upgrade it"
        )
    return current


def _covers_every_head(current: str) -> bool:
    """Whether the applied revisions include every shipped head.

    A branch that ``depends_on`` another head (parcels on the ledger) makes Alembic record only
    the dependent revision, so the recorded heads can be fewer than the script's heads.
    """
    script = ScriptDirectory.from_config(alembic_config())
    applied = {rev.revision for rev in script.iterate_revisions(tuple(current.split(",")), "base")}
    return set(script.get_heads()) <= applied


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave autogenerate's hands off what lives outside the models on purpose.

    The parcels' spatial indexes (SQLite R*Tree tables, the PostGIS ``geom`` column and its
    GiST index) and PostGIS's own tables exist only in the database, never in the models, so a
    reflected object with no model counterpart is never proposed for dropping.
    """
    return not (reflected and compare_to is None)
