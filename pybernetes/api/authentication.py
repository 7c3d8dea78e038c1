"""authentication.k8s.io/v1 reviews, answered and never stored: selfsubjectreviews ("who
am I", from the request user) and tokenreviews ("whose is this token", from the API
server's token authenticators — the ServiceAccount JWTs — for the audiences asked)."""
from __future__ import annotations

from typing import Any

from ..machinery import errors
from .strategy import Strategy


def user_info(user: dict) -> dict:
    """An authentication.k8s.io UserInfo with upstream's omitempty fields."""
    info: dict = {"username": user.get("username", "")}
    if user.get("uid"):
        info["uid"] = user["uid"]
    if user.get("groups"):
        info["groups"] = list(user["groups"])
    if user.get("extra"):
        info["extra"] = {k: list(v) for k, v in user["extra"].items()}
    return info


def check_kind(obj: dict, strategy: Strategy) -> None:
    """The body names this kind (or nothing); anything else is a 400 like a normal create."""
    kind, av = obj.get("kind"), obj.get("apiVersion")
    if kind and kind != strategy.kind:
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected "
                                 f"kind ({strategy.kind})")
    if av and av != strategy.api_version():
        raise errors.bad_request(f"the API version in the data ({av}) does not match the "
                                 f"expected API version ({strategy.api_version()})")


class ReviewStrategy(Strategy):
    """A review (here and in authorization.k8s.io): only ever created, answered, never
    stored."""
    namespaced = False
    verbs = ("create",)
    virtual = True

    def answer(self, obj: dict, **fields: Any) -> dict:
        """The reply: the request's metadata (creationTimestamp null, as upstream
        writes it) and `fields` (spec, status)."""
        md = dict(obj.get("metadata") or {})
        md["creationTimestamp"] = None
        return {"kind": self.kind, "apiVersion": self.api_version(), "metadata": md,
                **fields}


class SelfSubjectReviewStrategy(ReviewStrategy):
    group, version = "authentication.k8s.io", "v1"
    kind, plural = "SelfSubjectReview", "selfsubjectreviews"

    async def handle_create(self, obj: dict, user: dict, api: Any = None) -> dict:
        check_kind(obj, self)
        return self.answer(obj, status={"userInfo": user_info(user)})


class TokenReviewStrategy(ReviewStrategy):
    group, version = "authentication.k8s.io", "v1"
    kind, plural = "TokenReview", "tokenreviews"

    async def handle_create(self, obj: dict, user: dict, api: Any = None) -> dict:
        from ..apiserver.serviceaccount_tokens import review_token
        check_kind(obj, self)
        if (obj.get("metadata") or {}).get("namespace"):
            raise errors.bad_request("namespace is not allowed on this type")
        spec = obj.get("spec") or {}
        if not spec.get("token"):
            raise errors.bad_request("token is required for TokenReview in authentication")
        found, audiences, error = await review_token(api, spec["token"],
                                                     list(spec.get("audiences") or []))
        status: dict = {"user": user_info(found.__dict__) if found else {}}
        if found:  # upstream's omitempty: false and empty fields are left out
            status["authenticated"] = True
            status["audiences"] = audiences
        if error:
            status["error"] = error
        return self.answer(obj, spec=spec, status=status)


STRATEGIES = [SelfSubjectReviewStrategy(), TokenReviewStrategy()]
