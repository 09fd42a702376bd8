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

import torch

from cryomath.fourier.fft import ifft_nd


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
        f = torch.fft.fftfreq(n, dtype=dtype, device=z.device)
        fx = torch.fft.rfftfreq(n, dtype=dtype, device=z.device)
        kz, ky, kx = torch.meshgrid(f, f, fx, indexing="ij")
        k = torch.stack([kx, ky, kz], -1).reshape(-1, 3)
        values = torch.cat([self(part, z.to(dtype)) for part in k.split(chunk)])
        if max_shell is not None:
            values = torch.where(torch.linalg.vector_norm(k, dim=-1) * n <= max_shell + 0.5,
                                 values, 0)  # fmt: skip
        return ifft_nd(values.reshape(n, n, n // 2 + 1), (n, n, n), rfft=True)
