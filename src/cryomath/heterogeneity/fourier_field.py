"""A volume's Fourier transform as a neural field of frequency and conformation (the decoder of
cryoDRGN, Zhong et al. 2021, in Fourier space): ``V(k, z)``, a coordinate MLP of a
Fourier-feature encoding of ``k`` and of the latent ``z``.

* ``k`` in cycles per voxel, ``(x, y, z)`` order; the field is evaluated only where ``k_x >= 0``
  and elsewhere as ``conj V(-k)``, so every volume it makes is real (Friedel's law by
  construction, as insertion flips samples).
* The encoding: ``sin`` and ``cos`` of ``2 pi f k_i`` for ``features`` frequencies ``f``
  spaced geometrically from ``1 / 2`` to ``n / 2`` (cycles per unit of ``k``), per axis: the
  Fourier transform of an object ``n`` voxels wide varies on the scale ``1 / n``.
* Values are in the units of the images' centred spectra (``fourier.fft_nd``) divided by the
  model's ``scale``: a central slice of ``V`` is an image's spectrum without its CTF.
"""

import math
from dataclasses import dataclass

import torch

from cryomath.fourier.fft import ifft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.heterogeneity.projected import sample_weights
from cryomath.imaging import NoiseSpectrum, ParticleBatch, frequency_scale
from cryomath.projection import nyquist_samples


class FourierField(torch.nn.Module):
    """``V(k, z)`` (module docstring) for ``n``-voxel volumes and ``latent_dim``-dimensional
    conformations; ``width`` x ``depth`` hidden ReLU layers."""

    def __init__(self, n: int, latent_dim: int, width: int = 128, depth: int = 3,
                 features: int = 12, dtype=torch.float32):  # fmt: skip
        super().__init__()
        self.n, self.latent_dim = n, latent_dim
        frequencies = 0.5 * (n ** (1 / max(features - 1, 1))) ** torch.arange(features)
        self.register_buffer("frequencies", (2 * math.pi * frequencies).to(dtype))
        layers, inputs = [], 6 * features + latent_dim
        for _ in range(depth):
            layers += [torch.nn.Linear(inputs, width, dtype=dtype), torch.nn.ReLU()]
            inputs = width
        layers.append(torch.nn.Linear(inputs, 2, dtype=dtype))
        self.mlp = torch.nn.Sequential(*layers)

    def forward(self, k: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Complex ``V`` at ``k (..., 3)`` for latents ``z`` broadcast to ``(..., latent_dim)``."""
        flip = k[..., :1] < 0
        k = torch.where(flip, -k, k)
        phases = (k[..., None] * self.frequencies).flatten(-2)  # (..., 3 F)
        z = z.expand(*k.shape[:-1], self.latent_dim)
        out = self.mlp(torch.cat([phases.sin(), phases.cos(), z], -1))
        imag = torch.where(flip[..., 0], -out[..., 1], out[..., 1])
        return torch.complex(out[..., 0], imag)

    @torch.no_grad()
    def volume(self, z: torch.Tensor, max_shell: int | None = None, chunk: int = 65536):
        """The real ``(n, n, n)`` volume at the latent ``z (latent_dim,)``, zero beyond
        ``max_shell`` (the band the model was trained on)."""
        n = self.n
        dtype = self.frequencies.dtype
        k = fftfreq_grid((n, n, n), rfft=True, dtype=dtype, device=z.device).reshape(-1, 3)
        values = torch.cat([self(part, z.to(dtype)) for part in k.split(chunk)])
        if max_shell is not None:
            values = torch.where(torch.linalg.vector_norm(k, dim=-1) * n <= max_shell + 0.5,
                                 values, 0)  # fmt: skip
        return ifft_nd(values.reshape(n, n, n // 2 + 1), (n, n, n), rfft=True)


@dataclass
class SliceSamples:
    """What a field is compared with in a batch at its poses, ``(B, S)`` per in-band sample:
    the central-slice frequencies ``k (B, S, 3)`` (cycles per voxel of the field's grid:
    ``k = kx A[0] + ky A[1]``, RELION's ``A``), the spectra with the origins undone, the CTF
    and the whitened weights ``w = m / (2 sigma2)`` (``heterogeneity.projected``)."""

    k: torch.Tensor
    spectra: torch.Tensor
    ctf: torch.Tensor
    weights: torch.Tensor


def slice_samples(batch: ParticleBatch, centred: torch.Tensor, noise: NoiseSpectrum,
                  voxel_size_angstrom: float, max_shell: int) -> SliceSamples:  # fmt: skip
    """:class:`SliceSamples` of ``centred (B, n, n // 2 + 1)`` (the batch's spectra or its
    residuals with the origins undone: ``batch.centred``) at the batch's poses, up to
    ``max_shell``."""
    n = batch.image_size
    scale = frequency_scale(voxel_size_angstrom, batch)
    k, keep = nyquist_samples(n, scale, batch.dtype, batch.device, max_shell)
    rows = batch.rotations.to(batch.dtype) * scale
    coords = k[:, :1] * rows[:, None, 0] + k[:, 1:] * rows[:, None, 1]
    ctf = batch.ctf_values()
    ctf = torch.ones_like(centred.real) if ctf is None else ctf
    w = sample_weights(batch, noise, max_shell)
    return SliceSamples(
        coords, centred.flatten(-2)[..., keep],
        ctf.flatten(-2)[..., keep].expand(len(centred), -1),
        w.flatten()[keep].expand(len(centred), -1),
    )  # fmt: skip
