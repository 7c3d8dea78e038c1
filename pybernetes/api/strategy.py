"""A resource is a Strategy: everything kind-specific the generic REST code needs.

The REST layer (pybernetes/apiserver/rest.py) never knows a kind. For every
request it asks the resource's strategy to default, validate, split spec from
status, print table rows and expose field-selector attributes. Objects are
plain dicts (the JSON form of the v1.33 type).

Adding a kind = one Strategy subclass registered in pybernetes/api/registry.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..machinery.errors import FieldError

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Column:
    """A Table column definition (meta.k8s.io/v1 TableColumnDefinition)."""

    name: str
    type: str = "string"  # string | integer | number | boolean | date
    format: str = ""  # "name" for the NAME column, "" otherwise
    description: str = ""
    priority: int = 0  # >0: only with `-o wide`


NAME_COLUMN = Column("Name", "string", "name",
                     "Name must be unique within a namespace. Is required when creating resources, "
                     "although some resources may allow a client to request the generation of an "
                     "appropriate name automatically. Name is primarily intended for creation "
                     "idempotence and configuration definition. Cannot be updated. More info: "
                     "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_COLUMN = Column("Age", "string", "",
                    "CreationTimestamp is a timestamp representing the server time when this object "
                    "was created. It is not guaranteed to be set in happens-before order across "
                    "separate operations. Clients may not set this value. It is represented in "
                    "RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
                    "lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
                    "api-conventions.md#metadata")


@dataclass(frozen=True)
class ScaleSpec:
    """Where a resource keeps what the `scale` subresource exposes."""

    spec_replicas: tuple[str, ...] = ("spec", "replicas")
    status_replicas: tuple[str, ...] = ("status", "replicas")
    selector: tuple[str, ...] = ("spec", "selector")  # a LabelSelector (apps) or a map (RC)
    selector_is_map: bool = False


class Strategy:
    """Base strategy: sensible generic behaviour; subclasses override what differs."""

    group: ClassVar[str] = ""
    version: ClassVar[str] = "v1"
    kind: ClassVar[str] = ""
    plural: ClassVar[str] = ""
    singular: ClassVar[str] = ""  # defaults to kind.lower()
    namespaced: ClassVar[bool] = True
    short_names: ClassVar[tuple[str, ...]] = ()
    categories: ClassVar[tuple[str, ...]] = ()  # e.g. ("all",) for `kubectl get all`
    verbs: ClassVar[tuple[str, ...]] = ALL_VERBS
    # subresources served: "status", "scale", "binding", "finalize", "eviction", "approval",
    # "log", "exec", ... (the REST layer implements status/scale/finalize/binding generically)
    subresources: ClassVar[tuple[str, ...]] = ()
    scale: ClassVar[ScaleSpec | None] = None
    # Does a change to anything but metadata/status bump metadata.generation?
    tracks_generation: ClassVar[bool] = False
    # Storage: resources served by several group-versions share one storage key
    # (events and events.k8s.io events; autoscaling v1 and v2). `storage_resource`
    # names the key prefix; to_storage/from_storage convert to/from the stored form.
    storage_resource: ClassVar[str] = ""  # default: plural ("/registry/<plural>/...")
    # Preferred version of the group for discovery (first registered otherwise).
    preferred: ClassVar[bool] = True
    # Table printing
    columns: ClassVar[tuple[Column, ...]] = (NAME_COLUMN, AGE_COLUMN)
    # ----- switches the generic registry reads (upstream's strategy methods) -------
    allow_create_on_update: ClassVar[bool] = False  # a PUT of a missing object creates it
    return_deleted_object: ClassVar[bool] = False  # DELETE answers with the object, not a Status
    annotations_bump_generation: ClassVar[bool] = False  # annotation changes count as spec
    default_propagation: ClassVar[str] = "Background"  # when DeleteOptions name none
    # create-only reviews answered by handle_create(obj, user, api=APIState), nothing stored
    virtual: ClassVar[bool] = False
    storage_hooks: ClassVar[tuple[Any, ...]] = ()  # extra ResourceStore hooks (see resource_store)
    # (name) -> messages; None means a DNS-1123 subdomain, the common rule
    name_validator: ClassVar[Any] = None
    # () -> objects, for kinds computed rather than stored (componentstatuses)
    virtual_list: ClassVar[Any] = None

    # ----- identity -----------------------------------------------------------
    @classmethod
    def api_version(cls) -> str:
        return f"{cls.group}/{cls.version}" if cls.group else cls.version

    @classmethod
    def resource_singular(cls) -> str:
        return cls.singular or cls.kind.lower()

    @classmethod
    def storage_prefix(cls) -> str:
        """`/registry/<resource>/` (namespaced objects add `<ns>/<name>`)."""
        return f"/registry/{cls.storage_resource or cls.plural}/"

    @classmethod
    def key(cls, namespace: str | None, name: str) -> str:
        if cls.namespaced:
            return f"{cls.storage_prefix()}{namespace}/{name}"
        return f"{cls.storage_prefix()}{name}"

    # ----- lifecycle hooks (mutate `obj` in place) -------------------------------
    def default(self, obj: dict) -> None:
        """Fill every field a v1.33 server defaults."""

    def validate(self, obj: dict) -> list[FieldError]:
        """Semantic validation of a new object (after defaulting)."""
        return []

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        """Validation of an update; defaults to create validation plus immutables."""
        return self.validate(obj)

    def prepare_for_create(self, obj: dict) -> None:
        """Reset what a client may not set on create (status for resources with a
        status subresource)."""
        if "status" in self.subresources:
            obj.pop("status", None)
            initial = self.initial_status(obj)
            if initial is not None:
                obj["status"] = initial

    def initial_status(self, obj: dict) -> dict | None:
        """The status a freshly created object starts with (e.g. pod phase Pending)."""
        return None

    def prepare_for_update(self, obj: dict, old: dict) -> None:
        """Main-resource update: status is kept from `old` when it has its own subresource."""
        if "status" in self.subresources:
            if "status" in old:
                obj["status"] = old["status"]
            else:
                obj.pop("status", None)

    def prepare_for_status_update(self, obj: dict, old: dict) -> None:
        """status-subresource update: everything but status and metadata is kept from
        `old` (server-owned metadata was already carried over)."""
        for k in list(obj):
            if k not in ("metadata", "status", "apiVersion", "kind"):
                del obj[k]
        for k, v in old.items():
            if k not in ("metadata", "status", "apiVersion", "kind"):
                obj[k] = v

    def validate_status_update(self, obj: dict, old: dict) -> list[FieldError]:
        return []

    def deletion_grace_period(self, obj: dict, requested: int | None) -> int:
        """Seconds a DELETE waits before the object goes (pods on a node: their grace
        period, for the kubelet to stop them); 0 deletes at once."""
        return 0

    def holds_deletion(self, obj: dict) -> bool:
        """Does the kind itself keep an object being deleted (namespace spec.finalizers)?"""
        return False

    def on_deletion_marked(self, obj: dict) -> None:
        """Called when an object gets its deletionTimestamp (namespaces turn Terminating)."""

    def to_storage(self, obj: dict) -> dict:
        """Convert this version's form to the stored form (identity by default)."""
        return obj

    def from_storage(self, obj: dict) -> dict:
        """Convert the stored form to this version's form (identity by default)."""
        return obj

    # ----- reading -------------------------------------------------------------
    def table_row(self, obj: dict) -> list[Any]:
        """Cells for `columns` (Name and Age filled generically when these are the
        only columns). Ages are rendered by the REST layer: return the creation
        timestamp string for an Age column and it is humanised."""
        from ..machinery.printing import age
        return [obj.get("metadata", {}).get("name", ""), age(obj)]

    def field_labels(self, obj: dict) -> dict[str, str]:
        """Attributes a fieldSelector may use (metadata.name / metadata.namespace always)."""
        md = obj.get("metadata", {})
        labels = {"metadata.name": md.get("name", "")}
        if self.namespaced:
            labels["metadata.namespace"] = md.get("namespace", "")
        return labels

    def summary(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


@dataclass
class Registry:
    """All served resources, looked up the ways the API server needs."""

    strategies: list[Strategy] = field(default_factory=list)

    def register(self, strategy: Strategy) -> Strategy:
        self.strategies.append(strategy)
        return strategy

    def get(self, group: str, version: str, plural: str) -> Strategy | None:
        for s in self.strategies:
            if s.group == group and s.version == version and s.plural == plural:
                return s
        return None

    def by_kind(self, group: str, version: str, kind: str) -> Strategy | None:
        for s in self.strategies:
            if s.group == group and s.version == version and s.kind == kind:
                return s
        return None

    def groups(self) -> dict[str, list[str]]:
        """group -> versions, preferred first, in registration order."""
        out: dict[str, list[str]] = {}
        for s in self.strategies:
            vs = out.setdefault(s.group, [])
            if s.version not in vs:
                if s.preferred:
                    vs.insert(0, s.version)
                else:
                    vs.append(s.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[Strategy]:
        return [s for s in self.strategies if s.group == group and s.version == version]
