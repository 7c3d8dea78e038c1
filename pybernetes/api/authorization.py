"""authorization.k8s.io/v1 access reviews: "may this user do that?", answered, never stored.

Until the RBAC authorizer lands, members of system:masters may do everything and
nobody else is granted anything by a review (the request authorizer is more lenient,
but a review must not promise access RBAC will later refuse). `decide` is the seam
the RBAC engineer replaces.
"""
from __future__ import annotations

from typing import Any, Callable

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


def validate_review_spec(spec: dict) -> list[FieldError]:
    has_res = spec.get("resourceAttributes") is not None
    has_non = spec.get("nonResourceAttributes") is not None
    if has_res == has_non:
        return [errors.invalid_value("spec.resourceAttributes", "", "exactly one of "
                                     "nonResourceAttributes or resourceAttributes must be "
                                     "specified")]
    return []


def _answer(strategy: ReviewStrategy, obj: dict, user: dict) -> dict:
    spec = obj.get("spec") or {}
    attrs = spec.get("resourceAttributes") or spec.get("nonResourceAttributes") or {}
    allowed, reason = decide(user, attrs)
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
        return _answer(self, obj, user)


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
        return _answer(self, obj, subject)


STRATEGIES = [SelfSubjectAccessReviewStrategy(), SubjectAccessReviewStrategy()]
