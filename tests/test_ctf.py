"""The CTF against cisTEM's values (cryoJAX's test data) and RELION's CTF-multiplied
projections, the wavelength against the literature, the filters against their definitions."""

import math
import pickle
import warnings

import numpy as np
import pytest
import torch

from cryomath.ctf import CTF, compute_ctf, electron_wavelength_angstrom, phase_flip, wiener_filter
from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import ifft_nd
from cryomath.fourier.shift import phase_ramp
from cryomath.io import read_mrc, read_particles, read_relion_star
from cryomath.projection import extract_central_slices_rfft_3d, prepare_volume
from tests.conftest import DATA

CISTEM = np.load(DATA / "cryojax_cistem" / "cistem_ctf.npz")


def test_electron_wavelength_equals_the_literature_value():
    assert electron_wavelength_angstrom(300.0) == pytest.approx(0.0196875, abs=1e-6)
    assert electron_wavelength_angstrom(200.0) == pytest.approx(0.0250793, abs=1e-6)
    wl = electron_wavelength_angstrom(torch.tensor([300.0, 200.0], dtype=torch.float32))
    assert wl.dtype == torch.float32 and float(wl[0]) == pytest.approx(0.0196875, abs=1e-6)


def _cistem_wavelength_angstrom(kv):
    """The approximate formula of cisTEM-era software, 12.2639 / sqrt(V + 0.97845e-6 V^2)."""
    volts = kv * 1e3
    return 12.2639 / math.sqrt(volts + 0.97845e-6 * volts**2)


def _cistem_ctf(i, wavelength, dtype):
    df1, df2, angle, kv, cs, ac, px = CISTEM["parameters"][i]
    # The file's grid has theta = atan2(f1, f0): its first axis is x, ours (y, x) is the
    # transpose, so its astigmatism angle a is our 90 - a.
    values = [df1, df2, 90.0 - angle, kv, cs, ac]
    ctf = CTF(*(torch.tensor(v, dtype=dtype) for v in values))
    lam = None if wavelength is None else wavelength(kv)
    return compute_ctf(ctf, (128, 128), px, sign="cistem", wavelength_angstrom=lam).double()


@pytest.mark.parametrize("i", range(9))
def test_ctf_reproduces_cistem(i):
    reference = torch.from_numpy(CISTEM["ctf"][i].astype(np.float64))
    assert float(reference[0, 0]) == pytest.approx(-CISTEM["parameters"][i][5], abs=1e-7)
    # cisTEM evaluates in float32 with its approximate wavelength (0.0196870 A at 300 kV,
    # 2.6e-5 shorter than the exact 0.0196875); with both, every value agrees to 2e-4:
    ours = _cistem_ctf(i, _cistem_wavelength_angstrom, torch.float32)
    assert float((ours - reference).abs().max()) <= 2e-4
    # With cryomath's exact CODATA wavelength the phase drifts at high frequency (<= 0.02):
    exact = _cistem_ctf(i, None, torch.float64)
    assert float((exact - reference).abs().max()) <= 0.02


def test_ctf_times_projection_reproduces_relion_project_ctf():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = torch.from_numpy(read_mrc(DATA / "map_model" / "emd_3488.mrc", np.float64)[0])
    table = read_relion_star(DATA / "relion313_reference" / "proj_ctf_24.star")
    reference = torch.from_numpy(
        read_mrc(DATA / "relion313_reference" / "proj_ctf_24.mrcs", np.float64)[0]
    )
    px = float(table.pixel_size_angstrom[0])
    slices = extract_central_slices_rfft_3d(
        prepare_volume(volume, 2.0), torch.from_numpy(table.rotations)
    )
    ctf = compute_ctf(CTF.from_parameters(table.ctf), (100, 100), px)
    shifts = -torch.from_numpy(table.origins_angstrom) / px
    images = ifft_nd(slices * ctf * phase_ramp((100, 100), shifts), (100, 100), rfft=True)
    a = images - images.mean((-1, -2), keepdim=True)
    b = reference - reference.mean((-1, -2), keepdim=True)
    cc = (a * b).sum((-1, -2)) / torch.sqrt((a * a).sum((-1, -2)) * (b * b).sum((-1, -2)))
    assert float(cc.min()) >= 0.995  # measured 0.9999999 (RELION's sign: CTF(0) = +Q0)
    error = ((images - reference) ** 2).sum((-1, -2)).sqrt() / (reference**2).sum((-1, -2)).sqrt()
    assert float(error.max()) <= 0.05


def test_ctf_sign_envelopes_batching_and_dtype():
    ctf = CTF(
        torch.tensor([10000.0, 20000.0]), torch.tensor([9000.0, 20000.0]), torch.tensor(30.0),
        torch.tensor(300.0), torch.tensor(2.7), torch.tensor(0.1),
        bfactor_angstrom2=torch.tensor(50.0),
    )  # fmt: skip
    values = compute_ctf(ctf, (64, 64), 1.5)
    assert values.shape == (2, 64, 33) and values.dtype == torch.float32
    assert float(values[0, 0, 0]) == pytest.approx(0.1, abs=1e-6)
    full = compute_ctf(ctf, (64, 64), 1.5, rfft=False, fftshift=True)
    assert full.shape == (2, 64, 64)
    torch.testing.assert_close(full[..., 32, 32:], values[..., 0, :32])
    # B-factor envelope: |CTF| <= exp(-B k^2 / 4) at the Nyquist frequency
    k2 = (1 / 3.0) ** 2
    assert float(values[:, 0, 32].abs().max()) <= math.exp(-50 * k2 / 4) + 1e-6
    damped = compute_ctf(ctf, (64, 64), 1.5, source_semi_angle_rad=1e-4, focal_spread_angstrom=50)
    assert bool((damped.abs() <= values.abs() + 1e-6).all())


def test_ctf_constructors_from_star_cs_and_cryodrgn_files():
    cs = read_particles(DATA / "cryodrgn_cryosparc" / "cryosparc_P12_J24_001_particles.cs")
    ctf = CTF.from_parameters(cs.ctf)
    with open(DATA / "cryodrgn_cryosparc" / "ctf2.pkl", "rb") as f:
        golden = pickle.load(f)  # box, pixel, dfU, dfV, dfang, kV, Cs, w, phase
    torch.testing.assert_close(
        ctf.defocus_u_angstrom, torch.from_numpy(golden[:, 2]).double(), rtol=1e-6, atol=1e-3
    )
    star = read_particles(DATA / "cryodrgn_relion" / "relion31.star")
    assert CTF.from_parameters(star.ctf).voltage_kv.shape == (star.n,)


def test_implausible_ctf_parameters_are_caught():
    base = dict(
        defocus_v_angstrom=torch.tensor(10000.0), defocus_angle_degrees=torch.tensor(0.0),
        voltage_kv=torch.tensor(300.0), spherical_aberration_mm=torch.tensor(2.7),
        amplitude_contrast=torch.tensor(0.1),
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match="micrometres"):
        CTF(defocus_u_angstrom=torch.tensor(1.5), **base)
    with pytest.raises(InvalidInputError, match="NaN"):
        CTF(defocus_u_angstrom=torch.tensor(float("nan")), **base)
    with pytest.raises(InvalidInputError, match="mm"):
        CTF(
            defocus_u_angstrom=torch.tensor(1e4),
            **{**base, "spherical_aberration_mm": torch.tensor(2.7e7)},
        )


def test_phase_flip_and_wiener_filter():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(2, 32, 32, generator=g, dtype=torch.float64)
    ctf = CTF(torch.tensor(15000.0), torch.tensor(15000.0), torch.tensor(0.0), torch.tensor(300.0),
              torch.tensor(2.7), torch.tensor(0.1))  # fmt: skip
    values = compute_ctf(ctf.subset(...), (32, 32), 2.0).double()
    from cryomath.fourier.fft import rfft_2d

    corrupted = ifft_nd(rfft_2d(image) * values, (32, 32), rfft=True)
    flipped = phase_flip(corrupted, values)
    torch.testing.assert_close(rfft_2d(flipped), rfft_2d(image) * values.abs())
    # Wiener with infinite SNR inverts the CTF wherever it is not ~0
    restored = rfft_2d(wiener_filter(corrupted, values, 1e12))
    keep = values.abs() > 0.1
    torch.testing.assert_close(restored[..., keep], rfft_2d(image)[..., keep])


def test_ctf_aliasing_frequency_is_where_the_rings_outrun_the_box_samples():
    """At the returned frequency the local ring period 1 / (lambda df k) equals two samples of
    1 / (box pixel): measured from the phase of the CTF itself (d gamma / dk = pi per sample)."""
    from cryomath.ctf import ctf_aliasing_frequency, electron_wavelength_angstrom

    ctf = CTF(torch.tensor([15000.0, 25000.0], dtype=torch.float64),
              torch.tensor([15000.0, 25000.0], dtype=torch.float64), torch.tensor(0.0),
              torch.tensor(300.0), torch.tensor(0.0), torch.tensor(0.1))  # fmt: skip
    box, pixel = 128, 1.5
    k = ctf_aliasing_frequency(ctf, box, pixel)
    wavelength = float(electron_wavelength_angstrom(300.0))
    # gamma = -pi lambda df k^2 (Cs 0): the phase step over one sample 1 / (box pixel) is pi
    step = 2 * math.pi * wavelength * ctf.defocus_u_angstrom * k / (box * pixel)
    torch.testing.assert_close(step, torch.full_like(step, math.pi))
    assert float(k[0]) > float(k[1])  # more defocus aliases sooner
