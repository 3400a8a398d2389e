"""The state store: SQLite, or PostgreSQL for workers on several hosts, through SQLAlchemy Core.
`Store` (database.py) is the facade; the rooms behind it are listed in the README's Layout."""
