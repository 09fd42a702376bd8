"""A map as a neural field for ab initio (cryoDRGN2's homogeneous decoder, Zhong et al. 2021):
:class:`~cryomath.heterogeneity.fourier_field.FourierField` with no latent, ``V(k)`` the map's
spectrum (``fourier.fft_nd``'s units, divided by ``scale``) at frequencies ``k`` in cycles per
voxel, ``(x, y, z)``, evaluated only on the central slices it is compared with.

Fitted by Adam to images at given poses: the Gaussian negative log-likelihood of the imaging
layer ``1/2 sum w |X - C V(k)|^2`` per image (``heterogeneity.fourier_field.slice_samples``),
up to a band that the caller raises. The voxel map the pose search needs is the field
rendered on the grid (:meth:`NeuralVolume.volume`).
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import complex_dtype, fft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.heterogeneity.fourier_field import FourierField, slice_samples
from cryomath.imaging import NoiseSpectrum, ParticleBatch


class NeuralVolume:
    """One map of ``n`` voxels of ``voxel_size_angstrom`` as a ``width`` x ``depth`` field,
    seeded by ``seed``; ``scale``: the images' in-band spectral RMS (outputs of order one)."""

    def __init__(self, n: int, voxel_size_angstrom: float, scale: float, width: int = 128,
                 depth: int = 3, learning_rate: float = 1e-3, seed: int = 0,
                 dtype: torch.dtype = torch.float32, device=None):  # fmt: skip
        if scale <= 0 or width < 1 or depth < 1 or learning_rate <= 0:
            raise InvalidInputError("a neural map needs scale > 0, width, depth >= 1 and a "
                                    "positive learning rate")  # fmt: skip
        self.n, self.voxel, self.scale, self.dtype = n, voxel_size_angstrom, scale, dtype
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.field = FourierField(n, 0, width, depth, dtype=dtype).to(device)
        self.optimiser = torch.optim.Adam(self.field.parameters(), learning_rate)
        self._no_latent = torch.zeros(0, dtype=dtype, device=device)

    def _step(self, loss: torch.Tensor) -> float:
        if not bool(torch.isfinite(loss)):
            raise InvalidInputError("the neural map diverged (its loss is not finite): lower "
                                    "the learning rate")  # fmt: skip
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        return float(loss.detach())

    def fit_volume(self, volume: torch.Tensor, max_shell: int, steps: int) -> float:
        """``steps`` Adam steps towards the spectrum of ``volume (n, n, n)`` on the rfft grid up
        to ``max_shell`` (the start: the field takes a voxel map's low resolution); returns the
        last mean squared error (in units of ``scale^2``)."""
        n, device = self.n, self._no_latent.device
        k = fftfreq_grid((n, n, n), rfft=True, dtype=self.dtype, device=device)
        target = fft_nd(volume.to(device, torch.float64), 3)
        inside = torch.linalg.vector_norm(k, dim=-1) * n <= max_shell + 0.5
        k, target = k[inside], (target[inside] / self.scale).to(complex_dtype(self.dtype))
        last = 0.0
        for _ in range(steps):
            last = self._step((self.field(k, self._no_latent) - target).abs().pow(2).mean())
        return last

    def negative_log_likelihood(self, batch: ParticleBatch, noise: NoiseSpectrum,
                                max_shell: int) -> torch.Tensor:  # fmt: skip
        """``(B,)``: each image's ``1/2 sum w |X - C V(k)|^2`` at its pose up to ``max_shell``
        (differentiable in the field's weights). For images the model explains its mean is
        half the band's sample count (Friedel mates counted): held-out images well above
        that are out of the model's distribution."""
        s = slice_samples(batch, batch.centred(batch.spectra), noise, self.voxel, max_shell)
        predicted = s.ctf.to(self.dtype) * self.field(s.k.to(self.dtype), self._no_latent)
        residual = (s.spectra / self.scale).to(predicted.dtype) - predicted
        return 0.5 * (s.weights.to(self.dtype) * residual.abs().pow(2)).sum(-1) * self.scale**2

    def fit_images(self, batches: list[ParticleBatch], noise: NoiseSpectrum, max_shell: int,
                   steps: int) -> float:  # fmt: skip
        """``steps`` passes of one Adam step per batch (images at their poses, up to
        ``max_shell``; the loss: the mean negative log-likelihood per image); returns the
        last pass's mean loss."""
        total = 0.0
        for _ in range(steps):
            total = 0.0
            for batch in batches:
                total += self._step(self.negative_log_likelihood(batch, noise, max_shell).mean())
        return total / max(len(batches), 1)

    @torch.no_grad()
    def volume(self, max_shell: int) -> torch.Tensor:
        """The real ``(n, n, n)`` map (float64, the images' units), zero beyond ``max_shell``."""
        rendered = self.field.volume(self._no_latent, max_shell).double()
        return rendered * self.scale
