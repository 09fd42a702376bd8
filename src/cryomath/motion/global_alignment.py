"""Global alignment of a movie's frames against the sum of the others.

Each frame in turn is compared with the sum of all other frames as currently aligned (so its
own noise is not in its reference) and moved at once, so the next frame meets a sum that is
already more coherent (all frames moved together would each jump to the strongest of the
others' copies and oscillate): the peak of their cross-correlation, low-passed by a B-factor
(``exp(-B k^2 / 4)``, ``k`` in 1/pixel; MotionCor2's and RELION's default 150 px^2 suits frames
of about one electron per pixel), gives the frame's correction, refined to a fraction of a pixel
by a parabola through the peak and its neighbours on each axis. The correlation is computed
on the band the low-pass leaves (a smaller grid, as RELION's ``ccf_downsample``). The frames
are moved and the round repeated until no correction exceeds ``tolerance_px``. A drift is only
known up to a common shift: the result has a mean of zero.
"""

import math

import torch

from cryomath.ctf.damage import dose_weights
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import fft_nd, ifft_nd
from cryomath.fourier.grids import fftfreq_grid
from cryomath.fourier.shift import phase_ramp


def _low_pass(shape, bfactor_px2: float, dtype, device) -> torch.Tensor:
    k2 = fftfreq_grid(shape, dtype=dtype, device=device).pow(2).sum(-1)  # cycles/pixel
    return torch.exp(-bfactor_px2 * k2 / 4)


def _band(spectra: torch.Tensor, shape: tuple[int, int], bfactor_px2: float):
    """The rfft ``spectra`` cut to the frequencies the low-pass leaves (the product of two
    filtered frames above ``1e-4``: ``|k| <= sqrt(2 ln 1e4 / B)``), and that smaller grid's
    shape: the correlation is the same band-limited function, sampled more coarsely."""
    h, w = shape
    if bfactor_px2 <= 0:
        return spectra, shape
    k_max = math.sqrt(2 * math.log(1e4) / bfactor_px2)
    mh, mw = (min(n, 2 * math.ceil(k_max * n) + 2) for n in (h, w))
    if (mh, mw) == (h, w) or mh % 2 or mw % 2 or h % 2 or w % 2:
        return spectra, shape
    rows = torch.cat([torch.arange(mh // 2), torch.arange(h - mh // 2, h)]).to(spectra.device)
    return spectra[..., rows, : mw // 2 + 1], (mh, mw)


def _peak(correlation: torch.Tensor) -> torch.Tensor:
    """``(F, 2)`` the sub-pixel (x, y) position of each ``(F, h, w)`` map's maximum relative to
    the centre ``(w // 2, h // 2)`` (``fourier.fft``'s real-space origin)."""
    f, h, w = correlation.shape
    flat = correlation.flatten(1).argmax(1)
    iy, ix = flat // w, flat % w
    rows = torch.arange(f, device=correlation.device)

    def vertex(minus, centre, plus):
        denominator = minus - 2 * centre + plus
        safe = torch.where(denominator.abs() > 1e-30, denominator, torch.ones_like(denominator))
        return torch.where(denominator < 0, 0.5 * (minus - plus) / safe, 0.0).clamp(-0.5, 0.5)

    centre = correlation[rows, iy, ix]
    dx = vertex(correlation[rows, iy, (ix - 1) % w], centre, correlation[rows, iy, (ix + 1) % w])
    dy = vertex(correlation[rows, (iy - 1) % h, ix], centre, correlation[rows, (iy + 1) % h, ix])
    x = (ix - w // 2).to(correlation.dtype) + dx
    y = (iy - h // 2).to(correlation.dtype) + dy
    return torch.stack([x, y], -1)


def align_frames(frames: torch.Tensor, bfactor_px2: float = 150.0, iterations: int = 20,
                 tolerance_px: float = 0.01) -> torch.Tensor:  # fmt: skip
    """``(F, 2)`` the drift ``(x, y)`` of each of ``frames (F, h, w)`` (pixels, mean zero):
    the shift of frame ``f`` 's content, so that moving it by ``-drift`` aligns it (module
    docstring)."""
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise InvalidInputError(f"frames must be (F >= 2, h, w), got {tuple(frames.shape)}")
    full = tuple(frames.shape[-2:])
    spectra = fft_nd(frames - frames.mean((-1, -2), keepdim=True), 2, rfft=True)
    spectra = spectra * _low_pass(full, bfactor_px2, frames.dtype, frames.device)
    spectra, shape = _band(spectra, full, bfactor_px2)
    scale = torch.tensor([shape[1] / full[1], shape[0] / full[0]], dtype=frames.dtype,
                         device=frames.device)  # fmt: skip
    drift = torch.zeros(frames.shape[0], 2, dtype=frames.dtype, device=frames.device)
    aligned = spectra.clone()
    total = aligned.sum(0)
    for _ in range(iterations):
        largest = 0.0
        for f in range(len(spectra)):  # one frame at a time, the sum updated at once
            others = total - aligned[f]
            # the correlation peaks where the frame must move to meet the others
            peak = _peak(ifft_nd(others * aligned[f].conj(), shape, rfft=True)[None])[0]
            correction = peak / scale  # in pixels of the frames
            drift[f] -= correction
            moved = spectra[f] * phase_ramp(shape, -drift[f] * scale)
            total = others + moved
            aligned[f] = moved
            largest = max(largest, float(correction.abs().max()))
        if largest < tolerance_px:
            break
    return drift - drift.mean(0)


def aligned_sum(frames: torch.Tensor, drift_px: torch.Tensor, pixel_size_angstrom: float = 1.0,
                exposures_e_per_a2: torch.Tensor | None = None,
                voltage_kv: float = 300.0) -> torch.Tensor:  # fmt: skip
    """``(..., h, w)`` the ``frames (..., F, h, w)`` moved back by ``drift_px (..., F, 2)`` and
    summed (one movie, or each particle's boxes with its own track); with
    ``exposures_e_per_a2 (F,)`` each frequency dose-weighted (``ctf.damage.dose_weights``)."""
    shape = tuple(frames.shape[-2:])
    spectra = fft_nd(frames, 2, rfft=True) * phase_ramp(shape, -drift_px.to(frames.dtype))
    if exposures_e_per_a2 is not None:
        spectra = spectra * dose_weights(shape, pixel_size_angstrom, exposures_e_per_a2,
                                         voltage_kv, frames.dtype, frames.device)  # fmt: skip
    return ifft_nd(spectra.sum(-3), shape, rfft=True)
