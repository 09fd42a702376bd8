"""Noise power per optics group and resolution shell, and its estimation.

``sigma2[g, s]`` is the noise power per real and imaginary part of an rfft sample of shell
``s`` (``fourier.shell_index``: ``round(|k| N)``) in the images of optics group ``g``:
``E |noise_k|^2 = 2 sigma2`` in cryomath's unscaled forward FFT (``imaging.likelihood``).

Two estimates:

* from residuals ``X - Y`` of images and their predictions (RELION's M-step rule,
  ``ml_optimiser.cpp``: ``sigma2 = sum w |X - CTF A|^2 / (2 sum w N_shell)``), with weights per
  image or per (image, pose): :class:`NoiseSpectrumEstimator`;
* from the background of raw images outside a circular mask (before any model exists):
  :func:`estimate_noise_from_background`.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd
from cryomath.fourier.masks import spherical_mask
from cryomath.fourier.shells import hermitian_multiplicity, shell_index, shell_sum
from cryomath.imaging.batch import ParticleBatch


@dataclass
class NoiseSpectrum:
    """``sigma2 (G, S)`` for the optics groups ``groups`` (their ids, in the rows' order)."""

    groups: tuple[int, ...]
    sigma2: torch.Tensor

    def for_batch(self, batch: ParticleBatch) -> torch.Tensor:
        """The ``(S,)`` noise power of the batch's optics group, in its dtype and device."""
        if batch.optics_group not in self.groups:
            raise InvalidInputError(
                f"no noise spectrum for optics group {batch.optics_group} (have {self.groups})"
            )
        row = self.sigma2[self.groups.index(batch.optics_group)]
        return row.to(batch.device, batch.dtype)


class _ShellSums:
    """Per optics group: weighted sums of ``m |F|^2`` and of ``m`` over each shell (float64)."""

    def __init__(self) -> None:
        self.power: dict[int, torch.Tensor] = {}
        self.count: dict[int, torch.Tensor] = {}

    def add(self, group: int, n: int, power: torch.Tensor, total_weight: torch.Tensor) -> None:
        """``power (n, n // 2 + 1)``: a weighted sum of ``|F|^2`` over images; ``total_weight``
        the sum of the weights."""
        shells = shell_index((n, n), device=power.device)
        m = hermitian_multiplicity((n, n), device=power.device, dtype=torch.float64)
        size = int(shells.max()) + 1
        p = shell_sum(power.double() * m, shells, size).cpu()
        c = (shell_sum(m, shells, size) * total_weight.double()).cpu()
        if group in self.power and len(self.power[group]) != size:
            raise InvalidInputError(f"optics group {group} holds images of different boxes")
        self.power[group] = self.power.get(group, 0) + p
        self.count[group] = self.count.get(group, 0) + c

    def merge(self, other: "_ShellSums") -> None:
        for group, power in other.power.items():
            if group in self.power and len(self.power[group]) != len(power):
                raise InvalidInputError(f"optics group {group} holds images of different boxes")
            self.power[group] = self.power.get(group, 0) + power
            self.count[group] = self.count.get(group, 0) + other.count[group]

    def result(self) -> NoiseSpectrum:
        if not self.power:
            raise InvalidInputError("no images were given for the noise estimate")
        groups = tuple(sorted(self.power))
        size = max(len(self.power[g]) for g in groups)
        sigma2 = torch.full((len(groups), size), float("nan"), dtype=torch.float64)
        for i, g in enumerate(groups):
            k = len(self.power[g])
            sigma2[i, :k] = self.power[g] / (2 * self.count[g].clamp(min=1e-300))
        return NoiseSpectrum(groups, sigma2)


class NoiseSpectrumEstimator:
    """RELION's rule from residuals: ``add`` batches, then ``result()``."""

    def __init__(self) -> None:
        self._sums = _ShellSums()

    def add(
        self,
        batch: ParticleBatch,
        residual_spectra: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> None:
        """``residual_spectra (B, *H, n, n // 2 + 1)``: images minus predictions, weighted by the
        batch's weights times ``weights (B, *H)`` (e.g. posterior probabilities)."""
        n = batch.image_size
        lead = residual_spectra.shape[:-2]
        w = batch.weights.reshape(-1, *([1] * (len(lead) - 1)))
        w = w if weights is None else w * weights.to(w.dtype)
        w = w.expand(lead)
        power = (residual_spectra.abs() ** 2 * w[..., None, None]).reshape(-1, n, n // 2 + 1)
        self._sums.add(batch.optics_group, n, power.sum(0), w.sum())

    def merge(self, other: "NoiseSpectrumEstimator") -> None:
        """Add another estimator's sums (partial sums of workers)."""
        self._sums.merge(other._sums)

    def result(self) -> NoiseSpectrum:
        return self._sums.result()


def estimate_noise_from_background(
    batches: Iterable[ParticleBatch], mask_radius_px: float, soft_edge_px: float = 3.0
) -> NoiseSpectrum:
    """Noise power per optics group and shell from the pixels of raw images outside a circle of
    ``mask_radius_px`` (the particle): each image minus its background mean, times the soft
    background mask, transformed; the power at each frequency is divided by what white noise of
    unit variance gives there (:func:`_masked_white_noise_power`). Exact for white noise; for
    coloured noise the mask smooths the spectrum over a few shells."""
    sums = _ShellSums()
    for batch in batches:
        n = batch.image_size
        background = 1 - spherical_mask(
            (n, n), mask_radius_px, soft_edge_px, dtype=batch.dtype, device=batch.device
        )
        if float(background.sum()) < 1:
            raise InvalidInputError(
                f"a mask of radius {mask_radius_px:g} px leaves no background in {n}^2 images"
            )
        images = batch.images()
        mean = (images * background).sum((-1, -2)) / background.sum()
        spectra = fft_nd((images - mean[:, None, None]) * background, 2, rfft=True)
        power = (spectra.abs() ** 2 * batch.weights[:, None, None]).sum(0)
        sums.add(batch.optics_group, n, power * n * n / _masked_white_noise_power(background),
                 batch.weights.sum())  # fmt: skip
    return sums.result()


def _masked_white_noise_power(m: torch.Tensor) -> torch.Tensor:
    """``E |F[m (e - c)]_k|^2 (n, n // 2 + 1)`` for white noise ``e`` of unit variance and its
    masked mean ``c = sum m e / sum m``: ``sum m^2 - 2 Re(U_k conj M_k) / sum m + |M_k|^2 sum m^2
    / (sum m)^2``, with ``M``, ``U`` the transforms of ``m`` and ``m^2``. Beyond the mask's own
    band it is ``sum m^2``; at the first shells the mean's removal takes power away (a fifth at
    shell 1 for a wide particle). At ``k = 0`` it is 0 (no estimate): ``sum m^2`` is used there."""
    total, square = m.sum(), (m**2).sum()
    mask_ft, square_ft = fft_nd(m, 2, rfft=True), fft_nd(m**2, 2, rfft=True)
    expected = (square - 2 * (square_ft * mask_ft.conj()).real / total
                + mask_ft.abs() ** 2 * square / total**2)  # fmt: skip
    expected[0, 0] = square
    return expected
