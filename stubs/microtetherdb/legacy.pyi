"""Files of the earlier MicroTetherDB (raw btree of JSON documents) -> this database.

Imported only when used: `from microtetherdb.legacy import migrate`. See docs/migration.md.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

def key_expiry(key: str) -> Optional[int]:
    """Expiry of a generated key "<seconds>:<ttl>:<random>" (seconds + ttl), None for ttl 0 or other keys."""

def convert(kb: bytes, raw: bytes) -> Tuple[str, Dict[str, Any], List[str], Optional[int]]:
    """One earlier record -> (key, document without "_tags", tags, expiry). ValueError says what is wrong."""

def migrate(src: str, dst: str, clock: Optional[Callable[[], Union[int, float]]] = None,
            report: Callable[[Union[str, bytes], str], Any] = ...) -> int:
    """Copy every live record of the earlier file src into a new database dst; returns the number written.

    Keys are kept, "_tags" become tags, the expiry of generated keys is carried
    over, expired records are skipped. A record that cannot be converted is
    passed to report(key, reason) (default: printed) and skipped. src is only
    read; dst must not exist and is removed if the migration fails.
    """
