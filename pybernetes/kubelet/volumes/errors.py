"""A volume that cannot be set up: the pod waits in ContainerCreating and a FailedMount
event says why, worded as upstream's."""
from __future__ import annotations


class VolumeError(Exception):
    def __init__(self, volume: str, message: str):
        super().__init__(message)
        self.volume = volume

    @property
    def event_message(self) -> str:
        return f'MountVolume.SetUp failed for volume "{self.volume}" : {self}'

    reason = "FailedMount"
