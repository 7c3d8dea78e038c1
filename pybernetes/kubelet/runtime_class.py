"""The kubelet's RuntimeClass lookup (upstream's runtimeclass manager): a pod's
spec.runtimeClassName becomes the runtime handler its sandbox is created with.

A GET per class, remembered for a while: only pods that name a class pay for it, and
a class' handler is immutable (a class deleted and made again with another handler
is seen once the entry expires). A missing class is never remembered, so a pod that
waited for its class starts on the next try once the class exists."""
from __future__ import annotations

import time
from typing import Any

from pybernetes.client.api import Resource
from pybernetes.kubelet.runtime.base import ContainerRuntimeError
from pybernetes.machinery.errors import StatusError

RUNTIME_CLASSES = Resource("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False)
CACHE_SECONDS = 60.0


class RuntimeClassLookup:
    def __init__(self, client: Any, ttl: float = CACHE_SECONDS):
        self.client, self.ttl = client, ttl
        self._handlers: dict[str, tuple[str, float]] = {}   # class -> (handler, when read)

    async def handler(self, class_name: str | None) -> str:
        """The handler for a pod's runtimeClassName ("" for none: the runtime's default).
        ContainerRuntimeError (the sandbox cannot be made) when the class is missing."""
        if not class_name:
            return ""
        cached = self._handlers.get(class_name)
        if cached is not None and time.monotonic() - cached[1] < self.ttl:
            return cached[0]
        try:
            rc = await self.client.get(RUNTIME_CLASSES, class_name)
        except StatusError as e:
            self._handlers.pop(class_name, None)
            # upstream passes the API's error on: runtimeclasses.node.k8s.io "x" not found
            raise ContainerRuntimeError(str(e) if e.code == 404 else
                                        f"failed to lookup RuntimeClass {class_name}: {e}",
                                        reason="CreatePodSandboxError") from e
        handler = str(rc.get("handler") or "")
        self._handlers[class_name] = (handler, time.monotonic())
        return handler
