"""Output ranges of angles in degrees, shared by the package conventions."""

import torch


def wrap_signed_degrees(angles: torch.Tensor) -> torch.Tensor:
    """Angles in degrees -> ``(-180, 180]``."""
    wrapped = torch.remainder(angles + 180.0, 360.0) - 180.0
    return torch.where(wrapped <= -180.0, wrapped + 360.0, wrapped)


def wrap_positive_degrees(angles: torch.Tensor) -> torch.Tensor:
    """Angles in degrees -> ``[0, 360)`` (``-0`` becomes ``0``)."""
    wrapped = torch.remainder(angles, 360.0)
    return torch.where(wrapped >= 360.0, wrapped - 360.0, wrapped) + 0.0
