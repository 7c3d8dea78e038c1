"""Legacy ServiceAccount token Secrets (upstream's tokens controller, "serviceaccount-token").

A Secret of type kubernetes.io/service-account-token names its account in the
`kubernetes.io/service-account.name` annotation. The controller fills what is missing:
`data.token` (a long-lived JWT signed with --service-account-private-key-file), `ca.crt`
(the root CA) and `namespace`, and records the account's uid in the
`kubernetes.io/service-account.uid` annotation. A Secret whose account does not exist (or
exists under another uid) is deleted, and so are an account's Secrets when the account
is. Since Kubernetes 1.24 no Secret is created for an account by itself: users ask for
one by creating it."""
from __future__ import annotations

import base64
import logging

from cryptography.hazmat.primitives import serialization

from pybernetes.auth import serviceaccount_tokens as sat
from pybernetes.client.api import SECRETS, SERVICEACCOUNTS
from pybernetes.controllers.base import Controller
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"


def signer_from_private_key(pem: bytes) -> sat.Signer:
    """A signer whose kid comes from the key's own public half (as upstream derives it)."""
    key = serialization.load_pem_private_key(pem, password=None)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return sat.Signer(pem, sat.key_id(pub))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class TokensController(Controller):
    """Keys are "namespace/name" of token Secrets."""

    name = "serviceaccount-token"
    workers = 2
    root_ca = ""               # set by the manager, as for the serviceaccount controller
    private_key_file = ""      # --service-account-private-key-file

    def setup(self) -> None:
        self.secrets = self.informers.get(SECRETS)
        self.accounts = self.informers.get(SERVICEACCOUNTS)
        self.secrets.add_handler(on_add=self._secret_changed,
                                 on_update=lambda o, n: self._secret_changed(n))
        self.accounts.add_handler(on_add=self._account_changed, on_delete=self._account_changed,
                                  on_update=lambda o, n: self._account_changed(n))
        self._signer: sat.Signer | None = None

    def _secret_changed(self, secret: dict) -> None:
        if secret.get("type") == SA_TOKEN_TYPE:
            self.enqueue(secret)

    def _account_changed(self, sa: dict) -> None:
        md = sa.get("metadata") or {}
        for secret in self.secrets.list(md.get("namespace")):
            annotations = (secret.get("metadata") or {}).get("annotations") or {}
            if secret.get("type") == SA_TOKEN_TYPE and annotations.get(SA_NAME) == md.get("name"):
                self.enqueue(secret)

    def signer(self) -> sat.Signer | None:
        if self._signer is None and self.private_key_file:
            with open(self.private_key_file, "rb") as f:
                self._signer = signer_from_private_key(f.read())
        return self._signer

    async def reconcile(self, key: str) -> None:
        ns, _, name = key.partition("/")
        secret = self.secrets.get(ns, name)
        if secret is None or secret.get("type") != SA_TOKEN_TYPE or \
                secret["metadata"].get("deletionTimestamp"):
            return
        annotations = secret["metadata"].get("annotations") or {}
        sa = await self._account(ns, annotations.get(SA_NAME, ""), annotations.get(SA_UID, ""))
        if sa is None:
            await self._delete(secret)
            return
        signer = self.signer()
        if signer is None:
            return  # no signing key: the secret stays as written (upstream: no controller)
        data = dict(secret.get("data") or {})
        want = {"namespace": _b64(ns)}
        if self.root_ca:
            want["ca.crt"] = _b64(self.root_ca)
        if not data.get("token"):
            want["token"] = _b64(signer.sign(sat.legacy_claims(sa, secret)))
        uid = sa["metadata"].get("uid", "")
        if all(data.get(k) == v for k, v in want.items()) and annotations.get(SA_UID) == uid:
            return
        updated = dict(secret, data={**data, **want})
        updated["metadata"] = dict(secret["metadata"],
                                   annotations={**annotations, SA_NAME: sa["metadata"]["name"],
                                                SA_UID: uid})
        await self.client.update(SECRETS, updated)   # resourceVersion: a conflict retries
        log.info("filled token secret %s for serviceaccount %s", key, sa["metadata"]["name"])

    async def _account(self, ns: str, name: str, uid: str) -> dict | None:
        """The account, from the cache or (on a miss) the API; None if gone or replaced."""
        sa = self.accounts.get(ns, name) if name else None
        if sa is None and name:
            try:
                sa = await self.client.get(SERVICEACCOUNTS, name, ns)
            except StatusError as e:
                if e.code != 404:
                    raise
        if sa is None or (uid and sa["metadata"].get("uid") != uid):
            return None
        return sa

    async def _delete(self, secret: dict) -> None:
        md = secret["metadata"]
        try:
            await self.client.delete(SECRETS, md["name"], md["namespace"],
                                     preconditions={"uid": md.get("uid")})
            log.info("deleted token secret %s/%s: its serviceaccount is gone",
                     md["namespace"], md["name"])
        except StatusError as e:
            if e.code not in (404, 409):
                raise
