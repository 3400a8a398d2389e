"""The state store: SQLite, or PostgreSQL for workers on several hosts, through SQLAlchemy Core
(database.py; what differs: backend.py), its migrations, the actions trail, and errors that say in
one line what to do."""

# Every module that declares a table is imported here, before any store module is used, so
# whichever part of the program opens a store checks it against the whole schema (a partial one
# would look like another schema and migrate the store back and forth, and fail on a read-only
# one). Here rather than in database.py: these modules use its Store, and siblings import one way.
from fleet_alerting.store import actions, history, replay, silences  # noqa: F401
