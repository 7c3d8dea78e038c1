"""core/v1 PodTemplate."""
from __future__ import annotations

from typing import Any

from ...machinery.errors import FieldError
from ...machinery.printing import get_path
from .. import podspec
from ..strategy import NAME_COLUMN, Column, Strategy
from .cells import format_labels, meta
from .replicationcontrollers import containers_cells


class PodTemplateStrategy(Strategy):
    kind, plural = "PodTemplate", "podtemplates"
    columns = (NAME_COLUMN,
               Column("Containers", "string", "", "Names of each container in the template."),
               Column("Images", "string", "", "Images referenced by each container in the "
                      "template."),
               Column("Pod Labels", "string", "", "The labels for the pod template."))

    def default(self, obj: dict) -> None:
        if not isinstance(obj.get("template"), dict):
            obj["template"] = {}
        podspec.default_pod_template(obj["template"])

    def validate(self, obj: dict) -> list[FieldError]:
        return podspec.validate_pod_template(obj.get("template"), "template")

    def table_row(self, obj: dict) -> list[Any]:
        names, images = containers_cells(obj.get("template"))
        return [meta(obj).get("name", ""), names, images,
                format_labels(get_path(obj, "template", "metadata", "labels"))]
