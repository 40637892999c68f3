"""User-given names -> file system names that stay inside the folder they are put in."""

from __future__ import annotations

import hashlib
import re

UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # runs of anything but portable file name characters
PREFIX_CHARS = 40  # readable part kept from the name; the hash tells long names apart
HASH_CHARS = 10  # hex digits of SHA-256: a collision needs ~10^6 names with one prefix


def safe_folder_name(name: str) -> str:
    """A short folder name for `name`: its readable safe part, then a hash of all of it.

    Separators, `..`, spaces and non-ASCII letters become `_` (leading and trailing dots,
    dashes and underscores go), so the result is one plain path component: it cannot
    point elsewhere, be hidden, or look like an option. The hash of the full name keeps
    apart names that differ only in what was replaced (`a/b`, `a b`, `a_b`, or two names
    in another script) and names that share the first 40 characters. At most 51 chars.
    """
    prefix = UNSAFE.sub("_", name).strip("._-")[:PREFIX_CHARS].rstrip("._-")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    return f"{prefix}-{digest}" if prefix else digest
