"""certificates.k8s.io/v1: certificatesigningrequests (with status and approval)."""
from __future__ import annotations

import base64
from typing import Any

from ..machinery import errors, validation
from ..machinery.errors import FieldError
from ..machinery.printing import age, human_duration
from .apps import GoValue, name_of
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

KNOWN_USAGES = ["any", "cert sign", "client auth", "code signing", "content commitment",
                "crl sign", "data encipherment", "decipher only", "digital signature",
                "email protection", "encipher only", "ipsec end system", "ipsec tunnel",
                "ipsec user", "key agreement", "key encipherment", "microsoft sgc",
                "netscape sgc", "ocsp signing", "s/mime", "server auth", "signing", "timestamping"]
CONDITION_TYPES = ["Approved", "Denied", "Failed"]


def csr_condition_text(obj: dict) -> str:
    """The CONDITION column: Pending/Approved/Denied, then ,Failed and ,Issued."""
    kinds = {c.get("type") for c in (obj.get("status") or {}).get("conditions") or []}
    text = "Denied" if "Denied" in kinds else "Approved" if "Approved" in kinds else "Pending"
    if "Failed" in kinds:
        text += ",Failed"
    if (obj.get("status") or {}).get("certificate"):
        text += ",Issued"
    return text


def set_requester(obj: dict, user: dict) -> None:
    """spec.username/uid/groups/extra come from the authenticated creator, never the client.
    The API server calls this on create (a storage hook with the request user)."""
    spec = obj.setdefault("spec", {})
    spec["username"] = user.get("username", "")
    spec["uid"] = user.get("uid", "")
    spec["groups"] = list(user.get("groups") or [])
    extra = user.get("extra") or {}
    if extra:
        spec["extra"] = {k: list(v) for k, v in extra.items()}
    else:
        spec.pop("extra", None)


class CSRRequesterHook:
    """ResourceStore hook: stamps the requesting user on create."""

    async def before_create(self, obj: dict, ctx: Any) -> None:
        user = ctx.user
        set_requester(obj, {"username": user.username, "uid": user.uid,
                            "groups": user.groups, "extra": user.extra})


class CertificateSigningRequestStrategy(Strategy):
    group, version = "certificates.k8s.io", "v1"
    kind, plural = "CertificateSigningRequest", "certificatesigningrequests"
    namespaced = False
    short_names = ("csr",)
    subresources = ("status", "approval")
    storage_hooks = (CSRRequesterHook(),)
    columns = (NAME_COLUMN, AGE_COLUMN,
               Column("SignerName", "string", "", "Only show certificates requested by a signer"),
               Column("Requestor", "string", "", "Name of the user who requested the CSR"),
               Column("RequestedDuration", "string", "", "Requested duration of the certificate"),
               Column("Condition", "string", "", "Status of the CSR"))

    def initial_status(self, obj: dict) -> dict | None:
        return {}

    def default(self, obj: dict) -> None:
        for c in (obj.get("status") or {}).get("conditions") or []:
            if isinstance(c, dict) and not c.get("status"):
                c["status"] = "True"

    def prepare_for_update(self, obj: dict, old: dict) -> None:
        """The main resource may change metadata only: spec is immutable, status has its own."""
        obj["spec"] = old.get("spec")
        obj["status"] = old.get("status", {})

    def prepare_for_status_update(self, obj: dict, old: dict) -> None:
        """status: everything but approval conditions (those belong to /approval)."""
        super().prepare_for_status_update(obj, old)
        keep = [c for c in (old.get("status") or {}).get("conditions") or []
                if c.get("type") in ("Approved", "Denied")]
        new_status = obj.setdefault("status", {})
        rest = [c for c in new_status.get("conditions") or []
                if c.get("type") not in ("Approved", "Denied")]
        if keep or rest:
            new_status["conditions"] = keep + rest

    def prepare_for_approval_update(self, obj: dict, old: dict) -> None:
        """approval: only the conditions change; the certificate stays as it was."""
        conditions = (obj.get("status") or {}).get("conditions")
        for k in list(obj):
            if k not in ("metadata", "apiVersion", "kind"):
                del obj[k]
        for k, v in old.items():
            if k not in ("metadata", "apiVersion", "kind"):
                obj[k] = v
        status = dict(old.get("status") or {})
        if conditions is not None:
            status["conditions"] = conditions
        obj["status"] = status
        self.default(obj)

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out: list[FieldError] = []
        req = spec.get("request")
        if not req:
            out.append(errors.required("spec.request", ""))
        else:
            out += self._validate_request(req)
        signer = spec.get("signerName", "")
        if not signer:
            out.append(errors.required("spec.signerName", ""))
        else:
            out += self._validate_signer(signer)
        usages = spec.get("usages")
        if not usages:
            out.append(errors.required("spec.usages", ""))
        for i, u in enumerate(usages or []):
            if u not in KNOWN_USAGES:
                out.append(errors.not_supported(f"spec.usages[{i}]", u, KNOWN_USAGES))
        exp = spec.get("expirationSeconds")
        if isinstance(exp, int) and exp < 600:
            out.append(errors.invalid_value("spec.expirationSeconds", exp,
                                            "may not specify a duration less than 600 seconds "
                                            "(10 minutes)"))
        out += self._validate_conditions(obj)
        return out

    @staticmethod
    def _validate_request(req: str) -> list[FieldError]:
        try:
            pem = base64.b64decode(req, validate=True)
        except ValueError:
            return [errors.invalid_value("spec.request", "<request>", "must be base64-encoded")]
        if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
            return [errors.invalid_value("spec.request", GoValue("[]byte{...}"),
                                         "PEM block type must be CERTIFICATE REQUEST")]
        try:
            from cryptography import x509
            x509.load_pem_x509_csr(pem)
        except Exception as e:  # cryptography raises ValueError subclasses
            return [errors.invalid_value("spec.request", GoValue("[]byte{...}"), str(e))]
        return []

    @staticmethod
    def _validate_signer(signer: str) -> list[FieldError]:
        parts = signer.split("/")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            return [errors.invalid_value("spec.signerName", signer,
                                         "must be a fully qualified domain and path of the form "
                                         "'example.com/signer-name'")]
        return [errors.invalid_value("spec.signerName", signer, m)
                for m in validation.is_dns1123_subdomain(parts[0])]

    @staticmethod
    def _validate_conditions(obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        conds = (obj.get("status") or {}).get("conditions") or []
        kinds = [c.get("type") for c in conds]
        for i, c in enumerate(conds):
            if not c.get("type"):
                out.append(errors.required(f"status.conditions[{i}].type", ""))
            if c.get("status") not in ("True", "False", "Unknown"):
                out.append(errors.not_supported(f"status.conditions[{i}].status", c.get("status"),
                                                ["False", "True", "Unknown"]))
            if c.get("type") in CONDITION_TYPES and kinds.count(c["type"]) > 1:
                out.append(errors.duplicate(f"status.conditions[{i}].type", c["type"]))
        if "Approved" in kinds and "Denied" in kinds:
            out.append(errors.invalid_value("status.conditions", GoValue("[]certificates.CertificateSigningRequestCondition{...}"),
                                            "Approved and Denied conditions are mutually "
                                            "exclusive"))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        return self.validate(obj)

    def validate_status_update(self, obj: dict, old: dict) -> list[FieldError]:
        return self._validate_conditions(obj)

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        exp = spec.get("expirationSeconds")
        return [name_of(obj), age(obj), spec.get("signerName", ""), spec.get("username", ""),
                human_duration(exp) if exp is not None else "<none>", csr_condition_text(obj)]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        labels["spec.signerName"] = (obj.get("spec") or {}).get("signerName", "")
        return labels


STRATEGIES = [CertificateSigningRequestStrategy()]
