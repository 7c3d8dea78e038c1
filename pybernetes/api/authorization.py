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
from .apps import GoValue
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


def _subject(kind: str, group: str, spec: dict, causes: list[FieldError]) -> dict:
    """The user a (Local)SubjectAccessReview asks about; 422 if none."""
    if not spec.get("user") and not spec.get("groups"):
        causes.append(errors.invalid_value("spec.user", "", "at least one of user or group "
                                           "must be specified"))
    if causes:
        raise errors.invalid(kind, "", causes, group)
    return {"username": spec.get("user", ""), "groups": spec.get("groups") or [],
            "uid": spec.get("uid", ""), "extra": spec.get("extra") or {}}


class SubjectAccessReviewStrategy(ReviewStrategy):
    group, version = "authorization.k8s.io", "v1"
    kind, plural = "SubjectAccessReview", "subjectaccessreviews"

    async def handle_create(self, obj: dict, user: dict, api: Any = None) -> dict:
        check_kind(obj, self)
        spec = obj.get("spec") or {}
        subject = _subject(self.kind, self.group, spec, validate_review_spec(spec))
        return _answer(self, obj, subject, api)


class LocalSubjectAccessReviewStrategy(ReviewStrategy):
    """A SubjectAccessReview confined to one namespace (the URL's), so a namespace admin
    may ask it (the admin role grants it)."""
    group, version = "authorization.k8s.io", "v1"
    kind, plural = "LocalSubjectAccessReview", "localsubjectaccessreviews"
    namespaced = True

    async def handle_create(self, obj: dict, user: dict, api: Any = None) -> dict:
        check_kind(obj, self)
        spec = obj.get("spec") or {}
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        causes = validate_review_spec(spec)
        res = spec.get("resourceAttributes")
        if res is not None and res.get("namespace", "") != namespace:
            causes.append(errors.invalid_value("spec.resourceAttributes.namespace",
                                               res.get("namespace", ""),
                                               "must match metadata.namespace"))
        if spec.get("nonResourceAttributes") is not None:
            causes.append(errors.invalid_value("spec.nonResourceAttributes",
                                               GoValue("&authorization."
                                                       "NonResourceAttributes{...}"),
                                               "disallowed on this kind of request"))
        subject = _subject(self.kind, self.group, spec, causes)
        return _answer(self, obj, subject, api)


class SelfSubjectRulesReviewStrategy(ReviewStrategy):
    """What the requesting user may do in spec.namespace, as rule lists (kubectl auth
    can-i --list). Only RBAC can list its rules; without it, system:masters may do
    everything and anyone else's answer is incomplete."""
    group, version = "authorization.k8s.io", "v1"
    kind, plural = "SelfSubjectRulesReview", "selfsubjectrulesreviews"

    async def handle_create(self, obj: dict, user: dict, api: Any = None) -> dict:
        check_kind(obj, self)
        spec = obj.get("spec") or {}
        namespace = spec.get("namespace", "")
        authorizer = getattr(api, "authorizer", None)
        groups = list(user.get("groups") or [])
        if MASTERS in groups:
            rules = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                     {"verbs": ["*"], "nonResourceURLs": ["*"]}]
            incomplete = False
        elif authorizer is not None and authorizer.rbac is not None:
            who = UserInfo(user.get("username", ""), groups)
            rules = authorizer.rbac.policy.rules_for(who, namespace)
            incomplete = False
        else:
            rules, incomplete = [], True
        status = {"resourceRules": [_resource_rule(r) for r in rules
                                    if not r.get("nonResourceURLs")],
                  "nonResourceRules": [{"verbs": list(r.get("verbs") or []),
                                        "nonResourceURLs": list(r["nonResourceURLs"])}
                                       for r in rules if r.get("nonResourceURLs")],
                  "incomplete": incomplete}
        return self.answer(obj, spec=spec, status=status)


def _resource_rule(rule: dict) -> dict:
    out = {"verbs": list(rule.get("verbs") or [])}
    for field in ("apiGroups", "resources", "resourceNames"):
        if rule.get(field):
            out[field] = list(rule[field])
    return out


STRATEGIES = [SelfSubjectAccessReviewStrategy(), SubjectAccessReviewStrategy(),
              LocalSubjectAccessReviewStrategy(), SelfSubjectRulesReviewStrategy()]
