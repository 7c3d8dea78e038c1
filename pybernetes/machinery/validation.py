"""Generic API validation, worded like upstream's apimachinery validation.

Two shapes, as upstream:
- `is_*` checks take a value and return a list of message strings (empty = valid);
  strategies wrap them into FieldErrors at the right path.
- `validate_*` functions take a part of an object and a field path and return
  FieldErrors ready for `errors.invalid(...)`.

Messages are word-for-word what kube-apiserver v1.33 says, because kubectl users
and tests compare them verbatim.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from .errors import FieldError, forbidden, invalid_value, required

# ----- message builders ----------------------------------------------------------


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Upstream's RegexError, including its odd "',  or '" joining of examples."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i:
            out += " or "
        out += f"'{ex}', "
    return out + f"regex used for validation is '{fmt}')"


def empty_error() -> str:
    return "must be non-empty"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024

# ----- formats ----------------------------------------------------------------------

_QNAME_CHAR = "[A-Za-z0-9]"
_QNAME_EXT_CHAR = "[-A-Za-z0-9_.]"
QUALIFIED_NAME_FMT = f"({_QNAME_CHAR}{_QNAME_EXT_CHAR}*)?{_QNAME_CHAR}"
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                       "and end with an alphanumeric character")
_QUALIFIED_NAME_RE = re.compile(f"^{QUALIFIED_NAME_FMT}$")

LABEL_VALUE_FMT = f"({QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_LABEL_VALUE_RE = re.compile(f"^{LABEL_VALUE_FMT}$")

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                      "characters or '-', and must start and end with an alphanumeric character")
_DNS1123_LABEL_RE = re.compile(f"^{DNS1123_LABEL_FMT}$")

DNS1123_SUBDOMAIN_FMT = f"{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric "
                          "character")
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")

DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
_DNS1035_LABEL_RE = re.compile(f"^{DNS1035_LABEL_FMT}$")

WILDCARD_DNS1123_SUBDOMAIN_FMT = "\\*\\." + DNS1123_SUBDOMAIN_FMT
_WILDCARD_MSG = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS "
                 "subdomain, which must consist of lower case alphanumeric characters, '-' or '.' "
                 "and end with an alphanumeric character")
_WILDCARD_RE = re.compile(f"^{WILDCARD_DNS1123_SUBDOMAIN_FMT}$")

C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"
_C_IDENTIFIER_MSG = ("a valid C identifier must start with alphabetic character or '_', followed "
                     "by a string of alphanumeric characters or '_'")
_C_IDENTIFIER_RE = re.compile(f"^{C_IDENTIFIER_FMT}$")

ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_NAME_MSG = ("a valid environment variable name must consist of alphabetic characters, "
                     "digits, '_', '-', or '.', and must not start with a digit")
_ENV_VAR_NAME_RE = re.compile(f"^{ENV_VAR_NAME_FMT}$")

CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_MAP_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_MAP_KEY_RE = re.compile(f"^{CONFIG_MAP_KEY_FMT}$")

PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(f"^{PERCENT_FMT}$")
HTTP_HEADER_NAME_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_NAME_RE = re.compile(f"^{HTTP_HEADER_NAME_FMT}$")

_PORT_NAME_CHARSET_RE = re.compile("^[-a-z0-9]+$")
_ONE_LETTER_RE = re.compile("[a-z]")

# ----- string checks ----------------------------------------------------------------


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: `[prefix/]name`."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    else:
        return ["a qualified name " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName",
                                                  "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part " + empty_error())
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append("name part " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName",
                                               "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL_RE.match(value):
        if _DNS1123_SUBDOMAIN_RE.match(value):
            errs.append("must not contain dots")  # a valid subdomain, so only dots are wrong
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _WILDCARD_RE.match(value):
        errs.append(regex_error(_WILDCARD_MSG, WILDCARD_DNS1123_SUBDOMAIN_FMT, "*.example.com"))
    return errs


def is_c_identifier(value: str) -> list[str]:
    if _C_IDENTIFIER_RE.match(value):
        return []
    return [regex_error(_C_IDENTIFIER_MSG, C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_env_var_name(value: str) -> list[str]:
    errs: list[str] = []
    if not _ENV_VAR_NAME_RE.match(value):
        errs.append(regex_error(_ENV_VAR_NAME_MSG, ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME",
                                "MyEnvName1"))
    return errs + _chdir_prefix(value)


def is_config_map_key(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_MAP_KEY_RE.match(value):
        errs.append(regex_error(_CONFIG_MAP_KEY_MSG, CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME",
                                "key-name"))
    return errs + _chdir_prefix(value)


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_in_range(value: int, lo: int, hi: int) -> list[str]:
    return [] if lo <= value <= hi else [inclusive_range_error(lo, hi)]


def is_valid_port_name(port: str) -> list[str]:
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.match(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _ONE_LETTER_RE.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    if _PERCENT_RE.match(value):
        return []
    return [regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                        PERCENT_FMT, "1%", "93%")]


def is_http_header_name(value: str) -> list[str]:
    if _HTTP_HEADER_NAME_RE.match(value):
        return []
    return [regex_error("a valid HTTP header must consist of alphanumeric characters or '-'",
                        HTTP_HEADER_NAME_FMT, "X-Header-Name")]


def _legacy_ipv4(value: str) -> str | None:
    """Go's legacy parser accepted IPv4 octets with leading zeros (as decimal)."""
    parts = value.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return None
    return ".".join(str(int(p)) for p in parts)


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse like Go's net.ParseIP (legacy mode: leading zeros allowed, no zones)."""
    if "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        legacy = _legacy_ipv4(value)
        return ipaddress.ip_address(legacy) if legacy else None


def is_valid_ip(value: str, strict: bool = False) -> list[str]:
    """An IP address; `strict` adds v1.33's StrictIPCIDRValidation rules (off by default
    upstream for existing fields)."""
    ip = parse_ip(value)
    if ip is None:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    if strict:
        if _legacy_ipv4(value) is not None and _legacy_ipv4(value) != value:
            return ["must not have leading 0s"]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ["must not be an IPv4-mapped IPv6 address"]
        if str(ip) != value:
            return [f'must be in canonical form ("{ip}")']
    return []


def is_valid_cidr(value: str, strict: bool = False) -> list[str]:
    bad = ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    addr, sep, bits = value.partition("/")
    if not sep or not bits.isdigit() or parse_ip(addr) is None:
        return bad
    ip = parse_ip(addr)
    assert ip is not None
    if int(bits) > ip.max_prefixlen or (len(bits) > 1 and bits[0] == "0" and not strict):
        return bad
    if strict:
        if _legacy_ipv4(addr) not in (None, addr) or (len(bits) > 1 and bits[0] == "0"):
            return ["must not have leading 0s in IP or prefix length"]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ["must not have an IPv4-mapped IPv6 address"]
        net = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
        if net.network_address != ip:
            return ["must not have bits set beyond the prefix length"]
        if f"{net}" != value:
            return [f'must be in canonical form ("{net}")']
    return []


# backwards-friendly short names used by some callers
is_ip = is_valid_ip
is_cidr = is_valid_cidr


def is_path_segment_name(value: str) -> list[str]:
    """Names that end up in a URL path segment (e.g. most RBAC objects)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


# ----- name validators for metadata.name (prefix=True for generateName) -------------

NameFn = Callable[[str], list[str]]


def mask_trailing_dash(name: str) -> str:
    """generateName may end in '-': upstream swaps the last two characters for 'a'."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


# ----- object meta --------------------------------------------------------------------


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for k, v in (labels or {}).items():
        errs += [invalid_value(path, k, m) for m in is_qualified_name(k)]
        value = v if isinstance(v, str) else ""
        errs += [invalid_value(path, v, m) for m in is_valid_label_value(value)]
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    total = 0
    for k, v in (annotations or {}).items():
        errs += [invalid_value(path, k, m) for m in is_qualified_name(k.lower())]
        total += len(k.encode()) + len((v or "").encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(FieldError("FieldValueTooLong", path,
                               f"may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"))
    return errs


def _group_version_kind(api_version: str, kind: str) -> tuple[str, str, str]:
    group, _, version = api_version.rpartition("/")
    if api_version.count("/") > 1:  # upstream: unparsable -> empty group/version
        return "", "", kind
    return group, version, kind


def validate_owner_references(refs: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    first_controller = ""
    for ref in refs or []:
        ref = ref or {}
        group, version, kind = _group_version_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if not version:
            errs.append(invalid_value(f"{path}.apiVersion", ref.get("apiVersion", ""),
                                      "version must not be empty"))
        if not kind:
            errs.append(invalid_value(f"{path}.kind", kind, "kind must not be empty"))
        if not ref.get("name"):
            errs.append(invalid_value(f"{path}.name", ref.get("name", ""),
                                      "name must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid_value(f"{path}.uid", ref.get("uid", ""), "uid must not be empty"))
        if (group, version, kind) == ("", "v1", "Event"):
            errs.append(invalid_value(path, ref,
                                      "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if first_controller:
                errs.append(invalid_value(
                    path, refs,
                    "Only one reference can have Controller set to true. Found \"true\" "
                    f"in references for {first_controller} and {current}"))
            else:
                first_controller = current
    return errs


def validate_finalizers(finalizers: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for f in finalizers or []:
        errs += [invalid_value(path, f, m) for m in is_qualified_name(f)]
    fins = finalizers or []
    if "orphan" in fins and "foregroundDeletion" in fins:
        errs.append(invalid_value(path, fins,
                                  "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def validate_managed_fields(entries: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, e in enumerate(entries or []):
        p = f"{path}[{i}]"
        if e.get("operation") not in ("Apply", "Update"):
            errs.append(invalid_value(f"{p}.operation", e.get("operation", ""),
                                      "must be `Apply` or `Update`"))
        if e.get("fieldsType") and e["fieldsType"] != "FieldsV1":
            errs.append(invalid_value(f"{p}.fieldsType", e["fieldsType"], "must be `FieldsV1`"))
        if len(e.get("manager") or "") > 128:
            errs.append(FieldError("FieldValueTooLong", f"{p}.manager",
                                   "may not be more than 128 bytes"))
    return errs


def validate_object_meta(meta: dict, namespaced: bool, name_fn: NameFn = is_dns1123_subdomain,
                         path: str = "metadata") -> list[FieldError]:
    """Create-time ObjectMeta rules (upstream ValidateObjectMetaAccessor)."""
    errs: list[FieldError] = []
    gen_name = meta.get("generateName") or ""
    if gen_name:
        errs += [invalid_value(f"{path}.generateName", gen_name, m)
                 for m in _name_messages(name_fn, gen_name, prefix=True)]
    name = meta.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += [invalid_value(f"{path}.name", name, m) for m in _name_messages(name_fn, name)]
    ns = meta.get("namespace") or ""
    if namespaced:
        if not ns:
            errs.append(required(f"{path}.namespace"))
        else:
            errs += [invalid_value(f"{path}.namespace", ns, m) for m in is_dns1123_label(ns)]
    elif ns:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    gen = meta.get("generation")
    if isinstance(gen, int) and gen < 0:
        errs.append(invalid_value(f"{path}.generation", gen, IS_NEGATIVE))
    errs += validate_labels(meta.get("labels"), f"{path}.labels")
    errs += validate_annotations(meta.get("annotations"), f"{path}.annotations")
    errs += validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences")
    errs += validate_finalizers(meta.get("finalizers"), f"{path}.finalizers")
    errs += validate_managed_fields(meta.get("managedFields"), f"{path}.managedFields")
    return errs


def _name_messages(name_fn: NameFn, value: str, prefix: bool = False) -> list[str]:
    if prefix:
        if name_fn is is_path_segment_name:  # a prefix may be "." or ".."
            return [m for m in is_path_segment_name(value) if m.startswith("may not contain")]
        value = mask_trailing_dash(value)
    return name_fn(value)


def validate_object_meta_update(new: dict, old: dict, path: str = "metadata") -> list[FieldError]:
    """Update-only ObjectMeta rules (immutables, finalizers while deleting, generation).

    Labels/annotations/owner references are checked by validate_object_meta, which
    the REST layer runs on updates too, so they are not repeated here."""
    errs: list[FieldError] = []
    if old.get("deletionTimestamp"):
        extra = sorted(set(new.get("finalizers") or []) - set(old.get("finalizers") or []))
        if extra:
            listed = ", ".join(f'"{f}"' for f in extra)
            errs.append(forbidden(f"{path}.finalizers",
                                  "no new finalizers can be added if the object is being deleted, "
                                  f"found new finalizers []string{{{listed}}}"))
    new_gen, old_gen = new.get("generation") or 0, old.get("generation") or 0
    if isinstance(new_gen, int) and isinstance(old_gen, int) and new_gen < old_gen:
        errs.append(invalid_value(f"{path}.generation", new_gen, "must not be decremented"))
    for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                "deletionGracePeriodSeconds"):
        nv, ov = new.get(key), old.get(key)
        if (None if nv == "" else nv) != (None if ov == "" else ov):
            errs.append(invalid_value(f"{path}.{key}", nv if nv is not None else "",
                                      FIELD_IMMUTABLE))
    return errs


def validate_immutable_field(new: Any, old: Any, path: str) -> list[FieldError]:
    return [] if new == old else [invalid_value(path, new, FIELD_IMMUTABLE)]


def validate_nonnegative(value: int, path: str) -> list[FieldError]:
    return [invalid_value(path, value, IS_NEGATIVE)] if value < 0 else []
