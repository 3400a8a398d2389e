"""The one MetaData every table of the store is declared on (database.py, outbox.py, actions.py):
migrations compare a store with all of it."""

import sqlalchemy as sa

metadata = sa.MetaData()
