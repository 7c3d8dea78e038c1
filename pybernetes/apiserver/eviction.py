"""pods/eviction: a pod deletion that respects PodDisruptionBudgets (what `kubectl drain` uses).

The rules are upstream's (pkg/registry/core/pod/storage/eviction.go), in our own words:

- a pod that is already finished, still Pending or already being deleted costs the
  application nothing: it is deleted without looking at any budget;
- otherwise the PodDisruptionBudgets of its namespace whose selector matches it decide:
  none → delete; more than one → a 500 Failure (unsupported); one → the budget must
  allow a disruption. The allowance is taken with a compare-and-swap on the budget's
  status (disruptionsAllowed - 1, the pod noted in disruptedPods so the disruption
  controller stops counting it), and only then is the pod deleted;
- a pod that is not Ready does not count as healthy, so evicting it takes nothing from
  the budget when the budget is already met (or its unhealthyPodEvictionPolicy is
  AlwaysAllow); it is then deleted only if it has not changed since we looked;
- before the delete the pod gets the DisruptionTarget condition (EvictionByEvictionAPI).
"""
from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..api.policy import set_disruption_allowed_condition
from ..machinery import errors
from ..machinery.printing import now_rfc3339
from ..machinery.selectors import LabelSelector
from .request_info import RequestInfo
from .resource_store import Context, ListOptions, ResourceStore

if TYPE_CHECKING:
    from .rest import ResourceHandler

EVICTION_SCHEMA = "io.k8s.api.policy.v1.Eviction"
EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")
# upstream refuses evictions once this many approved evictions wait for the controller
MAX_DISRUPTED_PODS = 2000
# upstream retries pod conflicts this many times, half a second apart
POD_CONFLICT_RETRIES = 20
POD_CONFLICT_DELAY = 0.5

VIOLATES_BUDGET = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_BUDGETS = ("This pod has more than one PodDisruptionBudget, which the eviction "
                    "subresource does not support.")


# ----- the request body -------------------------------------------------------------------
def parse_eviction(body: Any, name: str, namespace: str) -> dict:
    """The Eviction's DeleteOptions (a copy), after upstream's decoding checks: a body of
    another kind or version, wrong JSON types and a name unlike the URL's are 400s."""
    from .rest import check_delete_options, reject_wrong_types
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be an Eviction object")
    kind, av = body.get("kind"), body.get("apiVersion")
    if kind is not None and kind != "Eviction":
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected "
                                 "kind (Eviction)")
    if av is not None and av not in EVICTION_VERSIONS:
        raise errors.bad_request(f"the API version in the data ({av}) does not match the "
                                 "expected API version (policy/v1)")
    reject_wrong_types(body, EVICTION_SCHEMA, "Eviction", "v1")
    md = body.get("metadata") or {}
    body_ns = md.get("namespace")
    if body_ns and body_ns != namespace:
        raise errors.bad_request("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
    if md.get("name", "") != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = copy.deepcopy(body.get("deleteOptions") or {})
    check_delete_options(options)
    policy = options.get("propagationPolicy")
    if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
        raise errors.invalid("DeleteOptions", "", [errors.not_supported(
            "propagationPolicy", policy, ["Foreground", "Background", "Orphan"])])
    return options


def merge_dry_run(options: dict, query_dry_run: list[str]) -> dict:
    """The request's ?dryRun and the Eviction's deleteOptions.dryRun must agree."""
    body_dry = list(options.get("dryRun") or [])
    if body_dry and query_dry_run and body_dry != query_dry_run:
        raise errors.bad_request(f"Non-matching dry-run options in request and content: "
                                 f"[{' '.join(query_dry_run)}] and [{' '.join(body_dry)}]")
    if query_dry_run and not body_dry:
        options["dryRun"] = list(query_dry_run)
    return options


# ----- pod facts ---------------------------------------------------------------------------
def is_pod_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def can_ignore_budget(pod: dict) -> bool:
    """Finished, Pending or already-terminating pods disrupt nothing more when evicted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or \
        bool(pod["metadata"].get("deletionTimestamp"))


def must_pin_version(pod: dict) -> bool:
    """Delete only the version we judged, unless the pod can no longer become Ready."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def with_resource_version(options: dict, rv: str) -> dict:
    out = copy.deepcopy(options)
    out.setdefault("preconditions", {})["resourceVersion"] = rv
    return out


def has_resource_version(options: dict) -> bool:
    return bool((options.get("preconditions") or {}).get("resourceVersion"))


def budget_selects(pdb: dict, pod: dict) -> bool:
    """policy/v1: a nil selector matches nothing, an empty one every pod; a broken one none."""
    try:
        sel = LabelSelector.from_api((pdb.get("spec") or {}).get("selector"))
    except errors.StatusError:
        return False
    return sel.matches(pod["metadata"].get("labels"))


# ----- budget arithmetic ------------------------------------------------------------------
def too_many_requests(cause: str, retry_after: int = 0) -> errors.StatusError:
    details: dict[str, Any] = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    headers = {}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return errors.StatusError(429, "TooManyRequests", VIOLATES_BUDGET, details, headers)


def still_processing(pdb_name: str) -> errors.StatusError:
    return too_many_requests(f"The disruption budget {pdb_name} is still being processed by "
                             "the server.", 10)


def take_disruption(pdb: dict, pod_name: str, dry_run: bool) -> dict:
    """The budget's status with one disruption spent on `pod_name`, or a refusal."""
    md, status = pdb["metadata"], pdb.setdefault("status", {})
    name = md["name"]
    if (status.get("observedGeneration") or 0) < (md.get("generation") or 0):
        raise still_processing(name)
    allowed = status.get("disruptionsAllowed") or 0
    if allowed < 0:
        raise errors.forbidden_message("poddisruptionbudget", name,
                                       "pdb disruptions allowed is negative", "policy")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise errors.forbidden_message(
            "poddisruptionbudget", name, "DisruptedPods map too big - too many evictions not "
            "confirmed by PDB controller", "policy")
    if allowed == 0:
        raise too_many_requests(
            f"The disruption budget {name} needs {status.get('desiredHealthy') or 0} healthy "
            f"pods and has {status.get('currentHealthy') or 0} currently")
    status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        set_disruption_allowed_condition(pdb, now_rfc3339())
    if not dry_run:
        status.setdefault("disruptedPods", {})[pod_name] = now_rfc3339()
    return pdb


# ----- the handler ------------------------------------------------------------------------
class Eviction:
    """One eviction request against the pods store `pods` in namespace `ns`."""

    def __init__(self, h: "ResourceHandler", pods: ResourceStore, ns: str, name: str,
                 options: dict, ctx: Context):
        self.api, self.pods, self.ns, self.name = h.api, pods, ns, name
        self.options, self.ctx = options, ctx

    @property
    def budgets(self) -> ResourceStore:
        rs = self.api.resource("policy", "v1", "poddisruptionbudgets")
        assert rs is not None
        return rs

    async def run(self) -> errors.StatusError | None:
        """None when the pod was evicted; a Failure Status (not raised) for many budgets."""
        pod = await self._delete_if_budget_irrelevant()
        if pod is None:
            return None
        matching = await self._matching_budgets(pod)
        if len(matching) > 1:
            return errors.StatusError(500, "", MULTIPLE_BUDGETS)
        pin = False
        if matching:
            pdb = matching[0]
            if self._unhealthy_may_go(pod, pdb):
                pin = True
            else:
                await self._spend_disruption(pdb["metadata"]["name"])
        options = with_resource_version(self.options, pod["metadata"]["resourceVersion"]) \
            if pin else self.options
        try:
            await self._mark_and_delete(options)
        except errors.StatusError as e:
            if e.code == 409 and pin and not has_resource_version(self.options):
                raise still_processing(matching[0]["metadata"]["name"])  # let the client retry
            raise
        return None

    async def _delete_if_budget_irrelevant(self) -> dict | None:
        """The pod (None once deleted here because no budget needs consulting)."""
        retry = not has_resource_version(self.options)
        for attempt in range(POD_CONFLICT_RETRIES):
            pod = await self.pods.get(self.ns, self.name)
            if not can_ignore_budget(pod):
                return pod
            options = self.options
            if must_pin_version(pod) and not has_resource_version(options):
                options = with_resource_version(options, pod["metadata"]["resourceVersion"])
            try:
                await self._mark_and_delete(options)
                return None
            except errors.StatusError as e:
                if e.code != 409 or not retry or attempt == POD_CONFLICT_RETRIES - 1:
                    raise
            await asyncio.sleep(POD_CONFLICT_DELAY)
        raise AssertionError("unreachable")

    async def _matching_budgets(self, pod: dict) -> list[dict]:
        items, _ = await self.budgets.list(self.ns, ListOptions())
        return [p for p in items if budget_selects(p, pod)]

    @staticmethod
    def _unhealthy_may_go(pod: dict, pdb: dict) -> bool:
        """A not-Ready pod is no healthy pod: evicting it spends nothing when the policy
        says AlwaysAllow or the budget is already met without it."""
        if is_pod_ready(pod):
            return False
        if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return True
        status = pdb.get("status") or {}
        desired = status.get("desiredHealthy") or 0
        return (status.get("currentHealthy") or 0) >= desired and desired > 0

    async def _spend_disruption(self, pdb_name: str) -> None:
        """CAS the budget's status; refusals (429/403) come straight from the fresh copy."""
        budgets = self.budgets

        async def mutate(old: dict | None) -> dict | None:
            if old is None:
                raise budgets._not_found(pdb_name)
            new = take_disruption(copy.deepcopy(old), self.name, self.ctx.dry_run)
            return await budgets.prepare_update(new, old, self.ctx, "status")

        try:
            await budgets.guaranteed_update(self.ns, pdb_name, mutate, self.ctx)
        except errors.StatusError as e:
            if e.code == 409:
                raise errors.StatusError(
                    504, "Timeout", f'Timeout: couldn\'t update PodDisruptionBudget "{pdb_name}" '
                    "due to conflicts", {"retryAfterSeconds": 10}) from None
            raise

    async def _mark_and_delete(self, options: dict) -> None:
        """Add DisruptionTarget (unless dry run), then delete with `options`."""
        if not self.ctx.dry_run:
            updated = await self._add_disruption_target(options)
            if has_resource_version(options):
                # we changed the pod ourselves: the precondition moves with it
                options = with_resource_version(options, updated["metadata"]["resourceVersion"])
        await self.pods.delete(self.ns, self.name, options, self.ctx)

    async def _add_disruption_target(self, options: dict) -> dict:
        pods, pre = self.pods, options.get("preconditions") or {}

        async def mutate(old: dict | None) -> dict | None:
            if old is None:
                raise pods._not_found(self.name)
            pods._check_preconditions(self.name, old["metadata"], pre)
            new = copy.deepcopy(old)
            set_disruption_target(new)
            return await pods.prepare_update(new, old, self.ctx, "status")

        pod, _ = await pods.guaranteed_update(self.ns, self.name, mutate, self.ctx)
        return pod


def set_disruption_target(pod: dict) -> None:
    """The DisruptionTarget condition, as upstream's eviction sets it."""
    conds = pod.setdefault("status", {}).setdefault("conditions", [])
    want = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}
    for i, c in enumerate(conds):
        if c.get("type") == "DisruptionTarget":
            keep = c.get("status") == "True" and c.get("lastTransitionTime")
            want["lastTransitionTime"] = c["lastTransitionTime"] if keep else now_rfc3339()
            want["lastProbeTime"] = c.get("lastProbeTime")
            conds[i] = want
            return
    want["lastProbeTime"] = None
    want["lastTransitionTime"] = now_rfc3339()
    conds.append(want)


async def handle_eviction(h: "ResourceHandler", request: web.Request, info: RequestInfo,
                          rs: ResourceStore, ns: str) -> web.Response:
    """POST pods/NAME/eviction: 201 Success once evicted; 429 when a budget says no."""
    from .rest import context, json_response, read_body
    if info.verb != "create":
        raise errors.method_not_allowed(info.verb)
    body, _ = await read_body(request, h.api.config.max_request_bytes)
    options = parse_eviction(body, info.name, ns)
    options = merge_dry_run(options, request.query.getall("dryRun", []))
    ctx = context(request, options)
    failure = await Eviction(h, rs, ns, info.name, options, ctx).run()
    if failure is not None:
        status = failure.status()
        del status["reason"]  # upstream returns this Status as an object, without a reason
        return json_response(status, failure.code)
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Success", "code": 201}, 201)
