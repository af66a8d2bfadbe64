# Exceptions raised by MicroTetherDB.


class DBError(Exception):
    # Base class: misuse of the database, e.g. any call on a closed database.
    pass


class DBLock(DBError):
    # The database is busy with a conflicting operation (an async batch or
    # cleanup in progress) and the call could not proceed within lock_timeout.
    pass


class CorruptDBError(DBError):
    # The file is not a MicroTetherDB database, or its metadata is damaged.
    pass


class DBFullError(MemoryError):
    # In-memory mode: the write would grow the store past ram_percentage.
    pass
