"""The pod network: named network namespaces (netns.py), CNI plugin invocation per
the CNI spec (cni.py) and the node's bridge network the runtime drives
(pod_network.py)."""
