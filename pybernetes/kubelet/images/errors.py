"""Image errors. `reason` is what the kubelet puts in a container's waiting state."""
from __future__ import annotations


class ImageError(Exception):
    """Any image failure; the message follows containerd's wording where it has one."""

    reason = "ErrImagePull"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint  # what the user can do next (the CLI prints it)


class InvalidImageName(ImageError):
    reason = "InvalidImageName"


class ImagePullError(ImageError):
    reason = "ErrImagePull"


class NotFound(ImagePullError):
    """The registry has no such repository, tag or digest."""


class AccessDenied(ImagePullError):
    """The registry refused our (missing or wrong) credentials."""


class DigestMismatch(ImagePullError):
    """Content did not hash to the digest (or size) it was asked for."""


class NeverPull(ImageError):
    reason = "ErrImageNeverPull"


class ImageNotKnown(ImageError):
    """No image in the store matches the name or id."""

    reason = "ImageNotKnown"


class ImageInUse(ImageError):
    reason = "ImageInUse"
