"""The state store: SQLite through SQLAlchemy Core (sqlite.py), its migrations, the actions
trail, and errors that say in one line what to do."""
