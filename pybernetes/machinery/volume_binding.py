"""Which PersistentVolume a claim may bind to: the rules the PV controller and the
scheduler's VolumeBinding plugin share (upstream's FindMatchingVolume and
CheckNodeAffinity), plus the annotations both write. Plain dicts, no I/O."""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable

from pybernetes.machinery.quantity import QuantityError, parse_quantity
from pybernetes.machinery.selectors import node_selector_requirement_matches as matches

# PVC: the binding is done (its value does not matter; upstream writes "yes")
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
# PV and PVC: the controller, not the user, set claimRef / volumeName
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
# PV: which provisioner made it
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
# PVC: which provisioner should make its volume (the PV controller sets both)
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
# PVC: the node the scheduler chose for the first pod using it (WaitForFirstConsumer)
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def annotations(obj: dict) -> dict:
    return _meta(obj).get("annotations") or {}


def claim_class(pvc: dict) -> str:
    """upstream's GetPersistentVolumeClaimClass: the beta annotation wins over the field."""
    ann = annotations(pvc)
    if BETA_CLASS_ANNOTATION in ann:
        return ann[BETA_CLASS_ANNOTATION]
    return (pvc.get("spec") or {}).get("storageClassName") or ""


def volume_class(pv: dict) -> str:
    ann = annotations(pv)
    if BETA_CLASS_ANNOTATION in ann:
        return ann[BETA_CLASS_ANNOTATION]
    return (pv.get("spec") or {}).get("storageClassName") or ""


def storage_bytes(q: object) -> Fraction:
    try:
        return parse_quantity(q) if q not in (None, "") else Fraction(0)
    except QuantityError:
        return Fraction(0)


def requested(pvc: dict) -> Fraction:
    spec = pvc.get("spec") or {}
    return storage_bytes(((spec.get("resources") or {}).get("requests") or {}).get("storage"))


def capacity(pv: dict) -> Fraction:
    return storage_bytes(((pv.get("spec") or {}).get("capacity") or {}).get("storage"))


def is_bound_to(pv: dict, pvc: dict) -> bool:
    """pv.spec.claimRef names this claim (an empty uid is a user's pre-binding by name)."""
    ref = (pv.get("spec") or {}).get("claimRef")
    md = _meta(pvc)
    if not ref or ref.get("name") != md.get("name") or \
            ref.get("namespace") != md.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == md.get("uid")


def delay_binding(pvc: dict, classes: dict[str, dict]) -> bool:
    """The claim's class binds at the first consumer (WaitForFirstConsumer)."""
    sc = classes.get(claim_class(pvc))
    return bool(sc) and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def node_affinity_matches(pv: dict, node: dict) -> bool:
    """upstream's CheckNodeAffinity: no required terms → any node; else any term whose
    expressions (labels) and fields (metadata.name) all hold."""
    required = (((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required"))
    if not required:
        return True
    labels = _meta(node).get("labels") or {}
    fields = {"metadata.name": _meta(node).get("name", "")}
    for term in required.get("nodeSelectorTerms") or []:
        exprs, fexprs = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not fexprs:
            continue
        if all(matches(e, labels.get(e.get("key", ""))) for e in exprs) and \
                all(matches(e, fields.get(e.get("key", ""))) for e in fexprs):
            return True
    return False


def _selector_matches(pvc: dict, pv: dict) -> bool:
    sel = (pvc.get("spec") or {}).get("selector")
    if not sel:
        return True
    from pybernetes.machinery.selectors import LabelSelector
    try:
        return LabelSelector.from_api(sel).matches(_meta(pv).get("labels") or {})
    except Exception:  # noqa: BLE001 - a selector the API accepted but we cannot read
        return False


def _modes_fit(pvc: dict, pv: dict) -> bool:
    want = (pvc.get("spec") or {}).get("accessModes") or []
    have = (pv.get("spec") or {}).get("accessModes") or []
    return all(m in have for m in want)


def _volume_mode(obj: dict) -> str:
    return (obj.get("spec") or {}).get("volumeMode") or "Filesystem"


def volume_fits(pvc: dict, pv: dict) -> bool:
    """Class, access modes, capacity, volume mode and selector all fit the claim."""
    return (volume_class(pv) == claim_class(pvc) and _modes_fit(pvc, pv)
            and capacity(pv) >= requested(pvc) and _volume_mode(pv) == _volume_mode(pvc)
            and _selector_matches(pvc, pv))


def find_matching_volume(pvc: dict, volumes: Iterable[dict], node: dict | None = None,
                         excluded: Iterable[str] = (), delay: bool = False) -> dict | None:
    """The smallest Available volume that fits the claim, or the one pre-bound to it.
    With `node` (the scheduler), volumes must be reachable from that node. With
    `delay` and no node (the PV controller, WaitForFirstConsumer) only a volume
    pre-bound to the claim qualifies: the scheduler picks unbound ones."""
    skip = set(excluded)
    best: dict | None = None
    for pv in volumes:
        md, spec = _meta(pv), pv.get("spec") or {}
        if md.get("name") in skip or md.get("deletionTimestamp"):
            continue
        if _volume_mode(pv) != _volume_mode(pvc):
            continue
        if node is not None and not node_affinity_matches(pv, node):
            continue
        if is_bound_to(pv, pvc):
            return pv  # pre-bound to this very claim (by the user or a provisioner)
        # only Available ones: a volume still Pending will be Available in a moment, and
        # binding it now would only meet a write conflict
        if spec.get("claimRef") or (pv.get("status") or {}).get("phase") != "Available":
            continue
        if node is None and delay:
            continue
        if not volume_fits(pvc, pv):
            continue
        if best is None or capacity(pv) < capacity(best):
            best = pv
    return best
