# MicroTetherDB: a key-value/document database for MicroPython on btree.
from .errors import CorruptDBError, DBError, DBFullError, DBLock
from .db import MicroTetherDB

__version__ = "2.0.0"
