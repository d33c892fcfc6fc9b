"""The settings both clients share: the URL, token and tenant (from the environment by default)."""
import os
from typing import Optional, Tuple
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8080"


def resolve(url: Optional[str], token: Optional[str],
            tenant: Optional[str]) -> Tuple[str, str, int, str, Optional[str], Optional[str]]:
    """(scheme, host, port, path prefix, token, tenant); None means STRATA_URL, STRATA_TOKEN,
    STRATA_TENANT from the environment."""
    url = url or os.environ.get("STRATA_URL") or DEFAULT_URL
    token = token if token is not None else os.environ.get("STRATA_TOKEN") or None
    tenant = tenant if tenant is not None else os.environ.get("STRATA_TENANT") or None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"strata: the URL must be http://HOST[:PORT] or https://..., not {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/"), token, tenant
