"""The forward model of image formation and its exact adjoint.

Forward (:func:`predict_spectra`): a prepared volume spectrum (``projection.prepare_volume``)
and a :class:`~cryomath.imaging.ParticleBatch` give the predicted image spectra

``Y_i(k) = CTF_i(k) * exp(-2 pi i k . s_i) * V(A_i^T k * voxel / pixel)``

(the central slice at RELION's pose A, the CTF at the batch's own pixel size, the content shift
``s_i`` in pixels), ``(B, *H, n, n // 2 + 1)`` for rotations ``(B, *H, 3, 3)`` (H: pose
hypotheses per image, none by default). The volume's voxel size
(``VolumeSpectrum.voxel_size_angstrom``, default: the batch's pixel size) against the batch's
pixel size scales the slice, so optics groups of different pixel sizes and boxes see the
same map.

With ``ewald`` (:class:`~cryomath.imaging.Ewald`) the slice is the sum of the two single
side-bands on Ewald spheres of opposite curvature, ``H V(A^T (k, +c k^2)) + conj(H)
V(A^T (k, -c k^2))`` (``ctf.ewald``), and insertion puts ``conj(H) X`` and ``H X`` onto them
(``imaging.ewald``: its weights, and its optional mask, which make it an approximate adjoint).

Adjoint (:func:`insert_spectra`): spectra of the same layout go back into a
:class:`~cryomath.imaging.FourierAccumulator`: ``data += sum w CTF exp(+2 pi i k.s) X`` and
``weights += sum w CTF^2``, with ``w`` the batch's per-image weight times optional weights per
image ``(B,)`` or per (image, hypothesis) ``(B, *H)`` (soft assignments of an E-step). With
unit weights ``data`` is exactly ``F^T X`` for the real inner product of images (rfft samples
weighted by their Hermitian multiplicity) and of the prepared spectrum.
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import ifft_nd
from cryomath.fourier.shift import phase_ramp
from cryomath.imaging.accumulator import FourierAccumulator
from cryomath.imaging.batch import ParticleBatch
from cryomath.imaging.ewald import Ewald, sideband_data, sideband_weights, sidebands
from cryomath.projection import VolumeSpectrum, extract_central_slices_rfft_3d


def frequency_scale(voxel_size_angstrom: float | None, batch: ParticleBatch) -> float:
    """Volume voxel size / image pixel size (1 when the volume's voxel size is unknown)."""
    if voxel_size_angstrom is None:
        return 1.0
    return float(voxel_size_angstrom) / batch.pixel_size_angstrom


def _poses(batch: ParticleBatch, rotations: torch.Tensor | None) -> torch.Tensor:
    rotations = batch.rotations if rotations is None else rotations
    if rotations is None:
        raise InvalidInputError("the forward model needs poses: the batch has none")
    if rotations.ndim < 3 or rotations.shape[0] != len(batch) or rotations.shape[-2:] != (3, 3):
        raise InvalidInputError(
            f"rotations must be (B, ..., 3, 3) with B = {len(batch)}, got {tuple(rotations.shape)}"
        )
    return rotations.to(batch.dtype)


def _per_hypothesis(value: torch.Tensor, n_hypothesis_dims: int, tail: int) -> torch.Tensor:
    """``value (B, *tail)`` or ``(B, *H, *tail)`` -> broadcastable against ``(B, *H, *tail)``."""
    if value.ndim == 1 + tail and n_hypothesis_dims:
        return value.reshape(value.shape[0], *([1] * n_hypothesis_dims), *value.shape[1:])
    return value


def _shift_ramp(batch, shifts_px, n_hyp, sign):
    shifts = batch.shifts_px if shifts_px is None else shifts_px
    if shifts is None:
        return None
    n = batch.image_size
    ramp = phase_ramp((n, n), sign * shifts.to(batch.dtype), rfft=True)
    return _per_hypothesis(ramp, n_hyp, 2)


def predict_spectra(
    spectrum: VolumeSpectrum,
    batch: ParticleBatch,
    rotations: torch.Tensor | None = None,
    shifts_px: torch.Tensor | None = None,
    ctf_sign: str = "relion",
    ewald: Ewald | None = None,
    max_shell: int | None = None,
) -> torch.Tensor:
    """Predicted rfft spectra ``(B, *H, n, n // 2 + 1)`` of the batch's images (module
    docstring); ``rotations (B, *H, 3, 3)`` and ``shifts_px (B, [*H,] 2)`` replace the batch's
    own poses and shifts (pose hypotheses); ``ewald``: curved slices (module docstring);
    ``max_shell``: zero beyond that shell (only the band is sampled)."""
    rotations = _poses(batch, rotations)
    n_hyp = rotations.ndim - 3
    n = batch.image_size
    scale = frequency_scale(spectrum.voxel_size_angstrom, batch)
    if ewald is not None:
        c, h = sidebands(batch, ewald, ctf_sign)
        h = _per_hypothesis(h, n_hyp, 2)
        plus, minus = (
            extract_central_slices_rfft_3d(spectrum, rotations, side * c, image_size=n,
                                           frequency_scale=scale, max_shell=max_shell)
            for side in (1, -1)
        )  # fmt: skip
        slices = h * plus + h.conj() * minus
    else:
        slices = extract_central_slices_rfft_3d(
            spectrum, rotations, image_size=n, frequency_scale=scale, max_shell=max_shell
        )
        ctf = batch.ctf_values(ctf_sign)
        if ctf is not None:
            slices = slices * _per_hypothesis(ctf, n_hyp, 2).to(slices.real.dtype)
    ramp = _shift_ramp(batch, shifts_px, n_hyp, 1)
    if ramp is not None:
        slices = slices * ramp
    return slices


def transfer_power(batch: ParticleBatch) -> torch.Tensor:
    """``|CTF(k) exp(-2 pi i k.s)|^2`` ``(B, n, n // 2 + 1)`` of the batch's own poses: the
    factor ``F^T F`` puts on a slice (1 without a CTF, except at the Nyquist samples of a
    shifted even box, where the Hermitian ramp is ``cos(pi s)``)."""
    n = batch.image_size
    power = torch.ones((len(batch), n, n // 2 + 1), dtype=batch.dtype, device=batch.device)
    ctf = batch.ctf_values()
    if ctf is not None:
        power = ctf * ctf
    ramp = _shift_ramp(batch, None, 0, 1)
    if ramp is not None:
        power = power * (ramp.real**2 + ramp.imag**2)
    return power


def predict_images(
    spectrum: VolumeSpectrum,
    batch: ParticleBatch,
    rotations: torch.Tensor | None = None,
    shifts_px: torch.Tensor | None = None,
    ctf_sign: str = "relion",
    ewald: Ewald | None = None,
) -> torch.Tensor:
    """The predicted images ``(B, *H, n, n)`` in real space (:func:`predict_spectra`)."""
    n = batch.image_size
    spectra = predict_spectra(spectrum, batch, rotations, shifts_px, ctf_sign, ewald)
    return ifft_nd(spectra, (n, n))


def insert_spectra(
    accumulator: FourierAccumulator,
    spectra: torch.Tensor,
    batch: ParticleBatch,
    rotations: torch.Tensor | None = None,
    shifts_px: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    ewald: Ewald | None = None,
) -> None:
    """Add the adjoint of :func:`predict_spectra` applied to ``spectra (B, [*H,] n, n//2+1)``
    (observed or residual; broadcast over the hypotheses of ``rotations (B, *H, 3, 3)``) to
    ``accumulator``, weighted by the batch's weights times ``weights (B,)`` or ``(B, *H)``;
    ``ewald``: onto the two curved side-bands (module docstring)."""
    rotations = _poses(batch, rotations)
    n_hyp = rotations.ndim - 3
    n = batch.image_size
    hyp_shape = tuple(rotations.shape[:-2])
    if spectra.shape[-2:] != (n, n // 2 + 1):
        raise InvalidInputError(
            f"spectra must be (B, ..., {n}, {n // 2 + 1}), got {tuple(spectra.shape)}"
        )
    centred = _per_hypothesis(spectra, n_hyp, 2)
    ramp = _shift_ramp(batch, shifts_px, n_hyp, -1)
    if ramp is not None:
        centred = centred * ramp
    w = _per_hypothesis(batch.weights, n_hyp, 0)
    if weights is not None:
        w = w * _per_hypothesis(weights.to(batch.dtype), n_hyp, 0)
    w = w.reshape(*w.shape, 1, 1)
    scale = frequency_scale(accumulator.voxel_size_angstrom, batch)
    if ewald is not None:
        _insert_sidebands(accumulator, centred, batch, rotations, w, ewald, scale)
        return
    ctf = batch.ctf_values()
    if ctf is None:
        ctf = torch.ones((n, n // 2 + 1), dtype=batch.dtype, device=batch.device)
    else:
        ctf = _per_hypothesis(ctf, n_hyp, 2)
    data = (centred * (ctf * w)).expand(*hyp_shape, n, n // 2 + 1)
    ctf2 = (ctf * ctf * w).expand(*hyp_shape, n, n // 2 + 1)
    accumulator.add(
        data.reshape(-1, n, n // 2 + 1), ctf2.reshape(-1, n, n // 2 + 1),
        rotations.reshape(-1, 3, 3), scale,
    )  # fmt: skip


def _insert_sidebands(accumulator, centred, batch, rotations, w, ewald, scale) -> None:
    """The two side-bands of ``imaging.ewald`` into ``accumulator``."""
    n = batch.image_size
    hyp_shape = tuple(rotations.shape[:-2])
    c, h = sidebands(batch, ewald)
    n_hyp = len(hyp_shape) - 1
    weight = sideband_weights(h, c, batch, ewald, accumulator.n_pad, scale)
    weight = (w * _per_hypothesis(weight, n_hyp, 2)).expand(*hyp_shape, n, n // 2 + 1)
    plus, minus = sideband_data(centred, batch, ewald, _per_hypothesis(h, n_hyp, 2))
    flat_rotations = rotations.reshape(-1, 3, 3)
    for side, data in ((1, plus), (-1, minus)):
        data = (data * w).expand(*hyp_shape, n, n // 2 + 1).reshape(-1, n, n // 2 + 1)
        accumulator.add(data, weight.reshape(-1, n, n // 2 + 1), flat_rotations, scale,
                        ewald_curvature=side * c)  # fmt: skip
