"""Image URLs: the body of an http(s) URL within size and time limits."""

from __future__ import annotations

import urllib.error
import urllib.request

from posecli.core.errors import ImageError
from posecli.media import video


def fetch_url(url: str, timeout: float, limit: int) -> bytes:
    """The body of an http(s) URL, at most `limit` bytes, giving up after `timeout` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise ImageError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ImageError(video.TIMEOUT_REASON) from exc
        raise ImageError(f"cannot fetch: {reason}") from exc
    if len(data) > limit:
        raise ImageError(f"more than {limit} bytes")
    if not data:
        raise ImageError("empty response (0 bytes)")
    return data
