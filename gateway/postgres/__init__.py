"""Gatehouse's state on PostgreSQL, for several gateway replicas sharing one database.

Each store here implements the same interface as its SQLite twin and shares its row codecs,
so the two backends differ only in SQL and in how they serialise racing writers: SQLite takes
the database's write lock (BEGIN IMMEDIATE), PostgreSQL locks the row (SELECT ... FOR UPDATE)
or makes the change conditional (UPDATE ... WHERE state = ... RETURNING).
"""
