"""Random draws for the noise models, reproducible whatever the device or the batching.

``generator``: ``None`` (torch's default), one ``torch.Generator`` for the whole batch, or a
sequence of generators, one per image (the leading dims of ``(..., h, w)`` flattened), so
that an image's noise depends only on its own generator, not on the batch it is made in.
Draws happen on the generator's device (a CPU generator for CUDA data gives the same numbers
as on the CPU) and are then moved to the data's device.
"""

from collections.abc import Sequence

import torch

from cryomath.errors import InvalidInputError

Generators = torch.Generator | Sequence[torch.Generator] | None


def _per_image(generator: Sequence[torch.Generator], shape: torch.Size) -> int:
    n = shape[:-2].numel()
    if len(generator) != n:
        raise InvalidInputError(f"{len(generator)} generators for {n} images")
    return n


def _draw(sample, shape, generator: Generators, dtype, device) -> torch.Tensor:
    shape = torch.Size(shape)
    if generator is None:
        return sample(shape, dtype=dtype, device=device)
    if isinstance(generator, torch.Generator):
        return sample(shape, generator=generator, dtype=dtype, device=generator.device).to(device)
    _per_image(generator, shape)
    draws = [sample(shape[-2:], generator=g, dtype=dtype, device=g.device) for g in generator]
    return torch.stack([d.to(device) for d in draws]).reshape(shape)


def standard_normal(
    shape: tuple[int, ...], generator: Generators, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Standard normal draws of ``shape (..., h, w)``."""
    return _draw(torch.randn, shape, generator, dtype, device)


def uniform(
    shape: tuple[int, ...], generator: Generators, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Uniform draws in [0, 1) of ``shape (..., h, w)``."""
    return _draw(torch.rand, shape, generator, dtype, device)


def poisson(rate: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Poisson counts (float) with mean ``rate (..., h, w)``."""
    if generator is None:
        return torch.poisson(rate)
    if isinstance(generator, torch.Generator):
        return torch.poisson(rate.to(generator.device), generator=generator).to(rate.device)
    _per_image(generator, rate.shape)
    flat = rate.reshape(-1, *rate.shape[-2:])
    draws = [
        torch.poisson(r.to(g.device), generator=g) for r, g in zip(flat, generator, strict=True)
    ]
    return torch.stack([d.to(rate.device) for d in draws]).reshape(rate.shape)
