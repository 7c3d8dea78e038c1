"""Reading HTTP bodies with a size cap. aiohttp's `StreamReader.read(n)` returns
whatever is buffered, up to n bytes — not n bytes — so a body that arrives in
several TCP segments must be read in a loop, or it is silently cut short."""
from __future__ import annotations

from typing import Protocol


class _Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


async def read_capped(stream: _Reader, limit: int) -> bytes:
    """The whole body if it is at most `limit` bytes; otherwise its first limit+1
    bytes, so the caller can tell it was too large without reading it all."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
