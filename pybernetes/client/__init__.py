"""The async Kubernetes client shared by the controller manager, scheduler and kubelet:
REST calls (api), list+watch caches (informer), work queues, leader election, events."""
