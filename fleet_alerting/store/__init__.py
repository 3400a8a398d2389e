"""The state store: SQLite, or PostgreSQL for workers on several hosts, through SQLAlchemy Core
(database.py; what differs: backend.py), its migrations, the actions trail, and errors that say in
one line what to do."""
