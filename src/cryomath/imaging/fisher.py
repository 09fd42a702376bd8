"""How well an image can tell its pose: the Fisher information of the pose under the Gaussian
model (``imaging.likelihood``) and the Cramér-Rao bound it sets on any unbiased estimate.

The pose parameters of image ``b`` about its own pose (``batch.rotations``, ``batch.shifts_px``)
are ``theta = (v_x, v_y, v_z, t_x, t_y)``: the rotation ``A exp(hat v)`` (radians) and the
content shift ``t`` (pixels). With the prediction ``Y(theta)`` (``predict_spectra``) and noise
power ``sigma2`` per real and imaginary part of each rfft sample,

``I_ab = sum_k (m_k / 2) Re(conj(dY_k / d theta_a) dY_k / d theta_b) / sigma2_k``

(``m_k`` the Hermitian multiplicity, so each Friedel pair counts once: for white noise of
variance ``v`` per pixel this is ``sum_pixels dy/d theta_a dy/d theta_b / v``). The
derivatives are central differences of the forward model (step ``1e-4`` radians and pixels,
float64: relative error about ``1e-8``). The bound: the covariance of an unbiased estimate
of ``theta`` is at least ``I^-1``.
"""

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.shells import hermitian_multiplicity, shell_index
from cryomath.imaging.batch import ParticleBatch
from cryomath.imaging.model import predict_spectra
from cryomath.imaging.noise_spectrum import NoiseSpectrum
from cryomath.projection import VolumeSpectrum
from cryomath.so3.lie import exp_map

STEP = 1e-4


def pose_fisher_information(
    spectrum: VolumeSpectrum, batch: ParticleBatch, noise: NoiseSpectrum,
    max_shell: int | None = None,
) -> torch.Tensor:  # fmt: skip
    """``(B, 5, 5)`` Fisher information of each image's pose ``(v_x, v_y, v_z, t_x, t_y)``
    (module docstring), over the shells from 1 to ``max_shell`` (default: all)."""
    if batch.rotations is None:
        raise InvalidInputError("the Fisher information of a pose needs the batch's poses")
    n, dtype = batch.image_size, batch.dtype
    shifts = batch.shifts_px
    if shifts is None:
        shifts = torch.zeros(len(batch), 2, dtype=dtype, device=batch.device)
    derivatives = []
    for a in range(5):
        step = torch.zeros(5, dtype=dtype, device=batch.device)
        step[a] = STEP
        ends = []
        for sign in (1, -1):
            rotations = batch.rotations @ exp_map(sign * step[:3]).to(batch.rotations)
            ends.append(predict_spectra(spectrum, batch, rotations, shifts + sign * step[3:]))
        derivatives.append((ends[0] - ends[1]) / (2 * STEP))
    d = torch.stack(derivatives, 1).flatten(2)  # (B, 5, K)
    shells = shell_index((n, n), device=batch.device).flatten()
    sigma2 = noise.for_batch(batch)
    if len(sigma2) <= int(shells.max()):
        raise InvalidInputError(f"the noise spectrum has {len(sigma2)} shells; {n}^2 images need "
                                f"{int(shells.max()) + 1}")  # fmt: skip
    w = hermitian_multiplicity((n, n), device=batch.device, dtype=dtype).flatten() / 2
    w = w * (shells >= 1) / sigma2[shells]
    if max_shell is not None:
        w = w * (shells <= max_shell)
    parts = torch.cat([d.real, d.imag], -1)
    return (parts * torch.cat([w, w])) @ parts.transpose(1, 2)


def rotation_error_bound_degrees(fisher: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the Cramér-Rao bound on each image's rotation error: the root of the trace of
    the rotation block of ``fisher (B, 5, 5)`` 's inverse (the shift marginalised), degrees;
    the median geodesic error of an efficient estimate is about ``0.89`` times it for an
    isotropic bound (the median of a chi with 3 degrees of freedom over its root mean square)."""
    covariance = torch.linalg.inv(fisher)[:, :3, :3]
    return torch.rad2deg(covariance.diagonal(dim1=1, dim2=2).sum(-1).sqrt())
