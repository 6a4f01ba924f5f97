"""Offline detection for weight downloads: fail in about a second instead of retrying.

Without ``HF_HUB_OFFLINE=1``, huggingface_hub retries an unreachable hub with back-off (about
50 s per file here) before failing. ``offline_unless_reachable`` first opens one TCP connection
to the hub (``HF_ENDPOINT``, default huggingface.co, port 443) from a daemon thread and waits at
most ``PROBE_SECONDS``; when that fails it switches huggingface_hub to offline mode for the
block, so cached files still load and missing ones fail at once.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

PROBE_SECONDS = 1.0


def hub_address() -> tuple[str, int]:
    """Host and port of the Hugging Face endpoint in use."""
    from huggingface_hub import constants

    parts = urlsplit(constants.ENDPOINT)
    return parts.hostname or "huggingface.co", parts.port or (80 if parts.scheme == "http" else 443)


def reachable(host: str, port: int, timeout: float = PROBE_SECONDS) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Name resolution has no timeout of its own, so the attempt runs in a daemon thread and is
    abandoned (counted as unreachable) when ``timeout`` passes.
    """
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


@contextmanager
def offline_unless_reachable(needed: bool = True) -> Iterator[str | None]:
    """Within the block, huggingface_hub is offline when the hub does not answer.

    Yields None when the hub is online (or ``needed`` is False, or offline mode was already on),
    else a sentence saying why only the local cache is searched.
    """
    from huggingface_hub import constants

    if not needed or constants.HF_HUB_OFFLINE:
        yield None
        return
    host, port = hub_address()
    if reachable(host, port):
        yield None
        return
    constants.HF_HUB_OFFLINE = True
    try:
        yield (
            f"no network: {host}:{port} did not answer within {PROBE_SECONDS:g} s, so only the "
            "local cache was searched (set HF_HUB_OFFLINE=1 to skip this check)"
        )
    finally:
        constants.HF_HUB_OFFLINE = False
