"""authorization.k8s.io/v1 access reviews: "may this user do that?", answered, never stored.

With `--authorization-mode RBAC` a review is answered by the API server's own
authorizer (the one every request goes through). Without RBAC, members of
system:masters may do everything and nobody else is granted anything by a review
(the AlwaysAllow request authorizer is more lenient, but a review must not promise
access RBAC would refuse).
"""
from __future__ import annotations

from typing import Any, Callable

from ..apiserver.request_info import RequestInfo
from ..auth.authn import UserInfo
from ..machinery import errors
from ..machinery.errors import FieldError
from .authentication import ReviewStrategy, check_kind

MASTERS = "system:masters"
Decider = Callable[[dict, dict], "tuple[bool, str]"]


def masters_only(user: dict, attributes: dict) -> tuple[bool, str]:
    """(allowed, reason) for `user` doing `attributes` (resourceAttributes or
    nonResourceAttributes)."""
    if MASTERS in (user.get("groups") or []):
        return True, f'allowed by the "{MASTERS}" group'
    return False, "no authorization policy grants this request"


decide: Decider = masters_only


def _request_info(attrs: dict, resource: bool) -> RequestInfo:
    """The RequestInfo a request with these review attributes would have."""
    if not resource:
        return RequestInfo(False, attrs.get("path", ""), attrs.get("verb", ""))
    return RequestInfo(True, "", attrs.get("verb", ""), group=attrs.get("group", ""),
                       version=attrs.get("version", ""), namespace=attrs.get("namespace", ""),
                       resource=attrs.get("resource", ""),
                       subresource=attrs.get("subresource", ""), name=attrs.get("name", ""))


def _decide(api: Any, user: dict, spec: dict) -> tuple[bool, str]:
    authorizer = getattr(api, "authorizer", None)
    attrs = spec.get("resourceAttributes") or spec.get("nonResourceAttributes") or {}
    if authorizer is None or "RBAC" not in authorizer.modes:
        return decide(user, attrs)
    who = UserInfo(user.get("username", ""), list(user.get("groups") or []),
                   user.get("uid", ""), dict(user.get("extra") or {}))
    return authorizer.decide(who, _request_info(attrs, spec.get("resourceAttributes")
                                                is not None))


def validate_review_spec(spec: dict) -> list[FieldError]:
    has_res = spec.get("resourceAttributes") is not None
    has_non = spec.get("nonResourceAttributes") is not None
    if has_res == has_non:
        return [errors.invalid_value("spec.resourceAttributes", "", "exactly one of "
                                     "nonResourceAttributes or resourceAttributes must be "
                                     "specified")]
    return []


def _answer(strategy: ReviewStrategy, obj: dict, user: dict, api: Any) -> dict:
    spec = obj.get("spec") or {}
    allowed, reason = _decide(api, user, spec)
    status: dict = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return strategy.answer(obj, spec=spec, status=status)


class SelfSubjectAccessReviewStrategy(ReviewStrategy):
    group, version = "authorization.k8s.io", "v1"
    kind, plural = "SelfSubjectAccessReview", "selfsubjectaccessreviews"

    async def handle_create(self, obj: dict, user: dict, api: Any = None) -> dict:
        check_kind(obj, self)
        causes = validate_review_spec(obj.get("spec") or {})
        if causes:
            raise errors.invalid(self.kind, "", causes, self.group)
        return _answer(self, obj, user, api)


class SubjectAccessReviewStrategy(ReviewStrategy):
    group, version = "authorization.k8s.io", "v1"
    kind, plural = "SubjectAccessReview", "subjectaccessreviews"

    async def handle_create(self, obj: dict, user: dict, api: Any = None) -> dict:
        check_kind(obj, self)
        spec = obj.get("spec") or {}
        causes = validate_review_spec(spec)
        if not spec.get("user") and not spec.get("groups"):
            causes.append(errors.invalid_value("spec.user", "", "at least one of user or group "
                                               "must be specified"))
        if causes:
            raise errors.invalid(self.kind, "", causes, self.group)
        subject = {"username": spec.get("user", ""), "groups": spec.get("groups") or [],
                   "uid": spec.get("uid", ""), "extra": spec.get("extra") or {}}
        return _answer(self, obj, subject, api)


STRATEGIES = [SelfSubjectAccessReviewStrategy(), SubjectAccessReviewStrategy()]
