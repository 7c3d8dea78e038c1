"""ObjectMeta mechanics the REST layer applies to every kind."""
from __future__ import annotations

import random
import secrets
import uuid

from .printing import now_rfc3339

# upstream's utilrand alphanums: no vowels, no confusable characters
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATED_NAME_LENGTH = 63 - 5


def generate_name(base: str) -> str:
    """`generateName` + 5 random characters, truncating the base like upstream."""
    if len(base) > MAX_GENERATED_NAME_LENGTH:
        base = base[:MAX_GENERATED_NAME_LENGTH]
    return base + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))


_uid_random = random.Random(secrets.randbits(128))


def new_uid() -> str:
    """A random (version 4) UUID. A per-process PRNG seeded from the OS: uids must be
    unique, not secret, and os.urandom per object was a measurable share of a create."""
    return str(uuid.UUID(int=_uid_random.getrandbits(128), version=4))


def stamp_new(meta: dict) -> None:
    """Fields the server owns on create."""
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = now_rfc3339()
    meta.pop("resourceVersion", None)
    meta.pop("deletionTimestamp", None)
    meta.pop("deletionGracePeriodSeconds", None)
    meta.pop("selfLink", None)


IMMUTABLE_ON_UPDATE = ("uid", "creationTimestamp", "deletionTimestamp",
                       "deletionGracePeriodSeconds", "name", "namespace")


def carry_over(meta: dict, old_meta: dict) -> None:
    """On update, the server-owned fields come from the stored object."""
    for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
              "generation"):
        if k in old_meta:
            meta[k] = old_meta[k]
        else:
            meta.pop(k, None)
    meta.pop("selfLink", None)
