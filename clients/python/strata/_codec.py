"""Values on the wire: what a Python value is stored as, and what a stored value reads back as.

bytes are stored as they are (application/octet-stream), str as UTF-8 (text/plain), anything else
through the client's serializer (JSON by default, application/json). A read decodes by the stored
Content-Type, so get() gives back what set() was given (up to what the serializer keeps: JSON makes
tuples lists). Pickle is never used unless a caller plugs it in as its own serializer.
"""
import base64
import json
from typing import Any, Dict, Optional, Tuple

OCTET = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class Serializer:
    """What set() uses for values that are neither bytes nor str. Subclass it (or give any object
    with these three members) to plug in another format."""

    content_type: str = JSON

    def dumps(self, value: Any) -> bytes:
        raise NotImplementedError

    def loads(self, data: bytes) -> Any:
        raise NotImplementedError


class JsonSerializer(Serializer):
    """JSON, compact, UTF-8; `default=` is handed to json.dumps for types JSON does not know."""

    content_type = JSON

    def __init__(self, default: Any = None) -> None:
        self.default = default

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                          default=self.default).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


def encode(value: Any, serializer: Serializer) -> Tuple[bytes, str]:
    """(body, content type) for a value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), OCTET
    if isinstance(value, str):
        return value.encode("utf-8"), TEXT
    return serializer.dumps(value), serializer.content_type


def _media(content_type: Optional[str]) -> str:
    return (content_type or OCTET).split(";", 1)[0].strip().lower()


def decode(body: bytes, content_type: Optional[str], serializer: Serializer) -> Any:
    """The value a stored body stands for, by its Content-Type."""
    media = _media(content_type)
    if media == _media(serializer.content_type):
        return serializer.loads(body)
    if media == "application/json" or media.endswith("+json"):
        return json.loads(body.decode("utf-8"))
    if media.startswith("text/"):
        return body.decode("utf-8", errors="replace")
    return body


def batch_item(key: str, value: Any, serializer: Serializer) -> Dict[str, Any]:
    """An _mset item: text in "value", anything else (or text with a NUL, which JSON strings
    cannot carry to the server) in "value_b64"."""
    body, ctype = encode(value, serializer)
    item: Dict[str, Any] = {"key": key, "content_type": ctype}
    text: Optional[str]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text and ctype != OCTET:
        item["value"] = text
    else:
        item["value_b64"] = base64.b64encode(body).decode("ascii")
    return item


def batch_value(item: Dict[str, Any], serializer: Serializer) -> Any:
    """The value of an _mget hit."""
    if "value_b64" in item:
        body = base64.b64decode(item["value_b64"])
    else:
        body = str(item.get("value", "")).encode("utf-8")
    return decode(body, item.get("content_type"), serializer)
