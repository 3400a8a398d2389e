"""The state store. Every module that declares a table is imported here, so whichever part of the
program opens a store checks it against the whole schema (a partial one would look like a
different schema and migrate the store back and forth)."""

from fleet_alerting.store import actions as _actions  # noqa: F401  (declares its table)
