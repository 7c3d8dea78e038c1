"""Kubernetes `Status` errors.

Every failure that reaches a client is a `StatusError`; the API server turns it
into a `Status` body with `Content-Type: application/json`. The constructors
below word their messages like kube-apiserver does, because kubectl prints them
verbatim (`Error from server (NotFound): pods "x" not found`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class FieldError:
    """One field-level cause of a 422 Invalid, as upstream's field.Error."""

    type: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    field: str  # e.g. "spec.containers[0].name"
    detail: str = ""
    bad_value: Any = None

    # upstream's ErrorType.String() for the message prefix
    _WORDS = {
        "FieldValueRequired": "Required value",
        "FieldValueInvalid": "Invalid value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTooMany": "Too many",
        "FieldValueNotFound": "Not found",
        "InternalError": "Internal error",
        "FieldValueTypeInvalid": "Invalid value",
    }

    def message(self) -> str:
        word = self._WORDS.get(self.type, "Invalid value")
        if self.type in ("FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate",
                         "FieldValueNotFound", "FieldValueTypeInvalid") and self.bad_value is not None:
            word = f"{word}: {_go_repr(self.bad_value)}"
        return f"{word}: {self.detail}" if self.detail else word

    def cause(self) -> dict:
        return {"reason": self.type, "message": self.message(), "field": self.field}


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, detail)


def invalid_value(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("FieldValueInvalid", field, detail, value)


def not_supported(field: str, value: Any, allowed: list[str]) -> FieldError:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return FieldError("FieldValueNotSupported", field, f"supported values: {quoted}", value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, "", value)


_GO_ESCAPES = {"\\": "\\\\", '"': '\\"', "\a": "\\a", "\b": "\\b", "\f": "\\f",
               "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """Go's %q / strconv.Quote: what upstream messages print for a string (control
    characters escaped, so a message never carries one)."""
    out = []
    for c in s:
        if c in _GO_ESCAPES:
            out.append(_GO_ESCAPES[c])
        elif c.isprintable() or c == " ":
            out.append(c)
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def _go_repr(v: Any) -> str:
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


class StatusError(Exception):
    """An error that carries a Kubernetes `Status`."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str | None, group: str, kind: str, **extra: Any) -> dict:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    d.update(extra)
    return d


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> StatusError:
    return StatusError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                       _details(name, group, resource))


def already_exists(resource: str, name: str, group: str = "") -> StatusError:
    return StatusError(409, "AlreadyExists",
                       f'{_qualified(resource, group)} "{name}" already exists',
                       _details(name, group, resource))


def conflict(resource: str, name: str, why: str, group: str = "") -> StatusError:
    return StatusError(409, "Conflict",
                       f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
                       _details(name, group, resource))


STALE_UPDATE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: str, name: str, causes: list[FieldError], group: str = "") -> StatusError:
    qual = f"{kind}.{group}" if group else kind
    msgs = [f"{c.field}: {c.message()}" for c in causes]
    if len(msgs) == 1:
        text = msgs[0]
    else:
        text = "[" + ", ".join(msgs) + "]"
    return StatusError(422, "Invalid", f'{qual} "{name}" is invalid: {text}',
                       _details(name, group, kind, causes=[c.cause() for c in causes]))


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def method_not_allowed(verb: str, what: str = "") -> StatusError:
    msg = f"{verb} is not supported on resources of kind \"{what}\"" if what else \
        "the server does not allow this method on the requested resource"
    return StatusError(405, "MethodNotAllowed", msg)


def gone(message: str) -> StatusError:
    return StatusError(410, "Gone", message)


def expired(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def too_large(message: str = "the server has rejected the request because the request body is too large") -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType",
                       'the body of the request was in an unknown format - accepted media types include: '
                       'application/json, application/yaml, application/vnd.kubernetes.protobuf'
                       if not content_type else
                       f"the server does not support the content type {content_type!r}: accepted media "
                       f"types include: application/json, application/yaml")


def not_acceptable(message: str = "only the following media types are accepted: application/json, application/yaml") -> StatusError:
    return StatusError(406, "NotAcceptable", message)


def unauthorized(message: str = "Unauthorized") -> StatusError:
    return StatusError(401, "Unauthorized", message)


def forbidden_error(user: str, verb: str, resource: str, group: str, namespace: str | None,
                    name: str | None = None, why: str = "") -> StatusError:
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    qual = _qualified(resource, group)
    subject = f'{qual} "{name}" is forbidden' if name else f"{qual} is forbidden"
    msg = f'{subject}: User "{user}" cannot {verb} resource "{resource}" in API group "{group}" {scope}'
    if why:
        msg += f": {why}"
    return StatusError(403, "Forbidden", msg, _details(name, group, resource))


def forbidden_message(resource: str, name: str | None, why: str, group: str = "") -> StatusError:
    qual = _qualified(resource, group)
    subject = f'{qual} "{name}" is forbidden' if name else f"{qual} is forbidden"
    return StatusError(403, "Forbidden", f"{subject}: {why}", _details(name, group, resource))


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}",
                       {"causes": [{"message": message}]})


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def timeout(message: str) -> StatusError:
    return StatusError(504, "Timeout", message)
