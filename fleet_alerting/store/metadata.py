"""The one MetaData every table of the store is declared on (sqlite.py, outbox.py, actions.py):
migrations compare a store with all of it."""

import sqlalchemy as sa

metadata = sa.MetaData()
