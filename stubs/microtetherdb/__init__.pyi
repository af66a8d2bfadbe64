"""MicroTetherDB: a key-value / document database for MicroPython on btree.

Type stubs for editors and type checkers on the host (the firmware's frozen
bytecode carries no docstrings: MicroPython drops them when compiling).
Reference: docs/api.md and docs/queries.md.
"""

from typing import Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, overload

__version__: str

JSON = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]
Doc = Dict[str, Any]
Key = Union[str, bytes]
Tags = Union[str, Sequence[str], None]
TTL = Union[int, float, None]
Query = Dict[str, Any]

class DBError(Exception):
    """Base class: misuse of the database, e.g. any call on a closed database."""

class DBLock(DBError):
    """A write conflicts with an async batch or cleanup in progress (or waited longer than lock_timeout)."""

class CorruptDBError(DBError):
    """The file is not a MicroTetherDB database or is damaged; the message names the file."""

class DBFullError(MemoryError):
    """Memory mode: the write would take the store past ram_percentage of the heap; nothing was written."""

class MicroTetherDB:
    """A database in RAM (in_memory=True, the default) or in a btree file.

    Every argument is readable as an attribute of the same name. Unknown
    keyword arguments raise TypeError; a wrong type or range raises ValueError
    naming the argument.
    """

    filename: str
    in_memory: bool
    ram_percentage: Union[int, float]
    max_retries: int
    retry_delay: Union[int, float]
    lock_timeout: Optional[Union[int, float]]
    ttl_check_interval: Union[int, float]
    cleanup_interval: Union[int, float]
    btree_cachesize: int
    btree_pagesize: int
    adaptive_threshold: bool
    event_loop: Any
    autoflush: Union[bool, int]
    clock: Callable[[], Union[int, float]]
    max_doc_size: int
    file_format: int  # 0 in memory, 1 a single file, 2 a database folder

    def __init__(
        self,
        filename: str = "microtether.db",
        in_memory: bool = True,
        ram_percentage: Union[int, float] = 15,
        max_retries: int = 3,
        retry_delay: Union[int, float] = 0.1,
        lock_timeout: Optional[Union[int, float]] = 5.0,
        ttl_check_interval: Union[int, float] = 60,
        btree_cachesize: int = 4096,
        btree_pagesize: int = 512,
        adaptive_threshold: bool = True,
        event_loop: Any = None,
        *,
        autoflush: Optional[Union[bool, int]] = None,
        clock: Optional[Callable[[], Union[int, float]]] = None,
        max_doc_size: int = 8192,
        cleanup_interval: Optional[Union[int, float]] = None,
        file_format: Optional[int] = None,
    ) -> None:
        """Open (or create) a database.

        filename: the file (file mode); parent folders are created.
        in_memory: True keeps the btree in RAM (lost at close()).
        ram_percentage: memory mode cap, % of the heap (DBFullError beyond).
        autoflush: True (file mode default) = durable when each write call
        returns; N = commit every N-th write call; False = only flush()/close().
        clock: seconds (default time.time), for TTL and generated keys.
        max_doc_size: largest document in bytes of encoded JSON.
        file_format: a new database on flash is a folder (2, the default:
        a commit log and chunks, docs/storage.md) or one file (1); an
        existing one opens in its own format (ValueError if this disagrees).
        """

    # -- writes ------------------------------------------------------------
    @overload
    def put(self, data: Doc, ttl: TTL = None, tags: Tags = None, key: Optional[Key] = None) -> str:
        """Store a document; returns its key (generated "SSSSSSSSSS-NNNNN" if none given).

        put(data, ttl=None, tags=None, key=None) or put(key, data, ttl=None, tags=None).
        ttl: seconds (None or 0 = no expiry). tags: a str or list of str, stored
        beside the document. Writing an existing key replaces the record.
        """
    @overload
    def put(self, key: Key, data: Doc, ttl: TTL = None, tags: Tags = None) -> str: ...

    def put_batch(self, items: Iterable[Union[Doc, Tuple[Key, Doc]]],
                  ttls: Union[TTL, Sequence[TTL]] = None) -> List[str]:
        """Store many documents (dicts, or (key, dict) pairs) with one commit, all or nothing.

        ttls: None, one number for all, or a list as long as items. Returns the
        keys in the order of the items.
        """

    def delete(self, key: Optional[Key] = None, purge: bool = False) -> int:
        """Delete one record: 1 if a live record was deleted, else 0. purge=True empties the database (returns 1)."""

    def delete_batch(self, keys: Union[Key, Iterable[Key]]) -> int:
        """Delete many keys with one commit, all or nothing; returns the number of live records deleted."""

    def cleanup(self) -> int:
        """Physically remove expired records; returns how many."""

    def flush(self) -> None:
        """Commit everything written so far (file mode)."""

    def close(self) -> None:
        """Commit and close; further calls raise DBError (close() again does nothing)."""

    @staticmethod
    def repair(path: str, backup: Optional[str] = None) -> Dict[str, Any]:
        """Salvage a damaged database file in place; the old file is kept as backup (path + ".corrupt").

        Returns a report: recovered, lost, unreadable, bad_pages, notes, backup, path.
        """

    # -- reads -------------------------------------------------------------
    def get(self, key: Key, default: Any = None) -> Any:
        """The document under key (a new dict), or default if there is none or it expired."""

    def __contains__(self, key: Key) -> bool: ...
    def __len__(self) -> int:
        """Number of live records."""

    def keys(self, start: Optional[Key] = None, end: Optional[Key] = None,
             prefix: Optional[Key] = None) -> Iterator[str]:
        """Live keys in key order; start inclusive, end exclusive."""

    def items(self, start: Optional[Key] = None, end: Optional[Key] = None,
              prefix: Optional[Key] = None) -> Iterator[Tuple[str, Doc]]:
        """(key, document) pairs of live records, in key order."""

    def values(self, start: Optional[Key] = None, end: Optional[Key] = None,
               prefix: Optional[Key] = None) -> Iterator[Doc]:
        """Documents of live records, in key order."""

    def records(self, start: Optional[Key] = None, end: Optional[Key] = None,
                prefix: Optional[Key] = None) -> Iterator[Tuple[str, Doc, List[str], Optional[int]]]:
        """(key, document, tags, expires) of live records in key order (expires: absolute clock seconds or None)."""

    def __iter__(self) -> Iterator[str]: ...

    def stats(self) -> Dict[str, Any]:
        """records, expired_pending, in_memory, bytes_used, file_size, budget, flushes, writes,
        unflushed_writes, live_bytes, dead_bytes, free_pages, sweeper, file_format."""

    # -- queries and indexes (docs/queries.md) --------------------------------
    def query(self, q: Query) -> List[Doc]:
        """Documents matching q: literal equality, $eq $ne $gt $gte $lt $lte $in $nin $exists
        $contains $startswith $regex $not $and $or, dotted paths, $tags, and the options
        $limit $skip $sort $keys $plan. Raises ValueError for a malformed query."""

    def find(self, q: Query) -> Iterator[Tuple[str, Doc]]:
        """Lazy (key, document) pairs matching q."""

    def explain(self, q: Query) -> Dict[str, Any]:
        """How q would run: plan ('index', 'scan', 'empty'), index, touch, filter, ..."""

    def create_index(self, field: str) -> bool:
        """Create a secondary index on a (dotted) field; False if it exists."""

    def drop_index(self, field: str) -> bool:
        """Drop an index; False if there was none."""

    def indexes(self) -> List[str]:
        """Names of the indexes ('$tags' is the built-in tag index)."""

    def reindex(self) -> int:
        """Rebuild every index from the records; returns the entries written."""

    def compact(self) -> int:
        """Copy the database into a fresh, densely packed btree (power-cut safe in file mode); returns bytes reclaimed."""

    # -- context managers ----------------------------------------------------
    def __enter__(self) -> "MicroTetherDB": ...
    def __exit__(self, *exc: Any) -> bool: ...
    async def __aenter__(self) -> "MicroTetherDB":
        """Starts the TTL sweeper task (every ttl_check_interval seconds)."""
    async def __aexit__(self, *exc: Any) -> bool: ...

    # -- asyncio API ---------------------------------------------------------
    async def aput(self, *args: Any, **kw: Any) -> str:
        """put(), awaitable."""
    async def aget(self, key: Key, default: Any = None) -> Any:
        """get(), awaitable."""
    async def adelete(self, key: Optional[Key] = None, purge: bool = False) -> int:
        """delete(), awaitable."""
    async def aput_batch(self, items: Iterable[Union[Doc, Tuple[Key, Doc]]],
                         ttls: Union[TTL, Sequence[TTL]] = None) -> List[str]:
        """put_batch() in chunks of 16 records, yielding to the loop between chunks; cancelled = undone."""
    async def adelete_batch(self, keys: Union[Key, Iterable[Key]]) -> int:
        """delete_batch() in chunks of 16 keys, yielding between chunks."""
    async def aquery(self, q: Query) -> List[Doc]:
        """query(), awaitable."""
    async def acleanup(self) -> int:
        """cleanup() in chunks, yielding between them."""
    async def aflush(self) -> None:
        """flush(), awaitable."""
    async def aclose(self) -> None:
        """Stop the sweeper, close."""
