import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryomath import fourier
from cryomath.errors import InvalidInputError

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("n", [7, 8])
@pytest.mark.parametrize("dtype", DTYPES)
def test_centred_delta_has_flat_real_spectrum(n, dtype):
    x = torch.zeros(n, n, dtype=dtype)
    x[n // 2, n // 2] = 1.0
    for f in (fourier.rfft_2d(x), fourier.fft_2d(x)):
        assert f.dtype == (torch.complex64 if dtype == torch.float32 else torch.complex128)
        torch.testing.assert_close(f, torch.ones_like(f))


@pytest.mark.parametrize("n", [31, 32])
def test_gaussian_transform_is_analytic(n):
    # A centred Gaussian of sigma s pixels has the (sampled, unaliased) spectrum
    # 2 pi s^2 exp(-2 pi^2 s^2 |k|^2), k in cycles/pixel.
    s = 2.5
    r = fourier.real_space_grid((n, n), dtype=torch.float64)
    x = torch.exp(-(r**2).sum(-1) / (2 * s**2))
    k = fourier.fftfreq_grid((n, n), rfft=True, dtype=torch.float64)
    expected = 2 * np.pi * s**2 * torch.exp(-2 * np.pi**2 * s**2 * (k**2).sum(-1))
    torch.testing.assert_close(
        fourier.rfft_2d(x).real, expected, atol=1e-7, rtol=0
    )  # tails cut at the box edge: e^-19
    assert fourier.rfft_2d(x).imag.abs().max() < 1e-12


@pytest.mark.parametrize("shape", [(6, 8), (7, 9), (5, 6, 8)])
@pytest.mark.parametrize("fftshift", [False, True])
@pytest.mark.parametrize("rfft", [False, True])
def test_fft_round_trip_and_grid_layout(shape, fftshift, rfft):
    x = torch.randn(3, *shape, dtype=torch.float64)
    f = fourier.fft_nd(x, len(shape), rfft=rfft, fftshift=fftshift)
    assert f.shape[1:] == fourier.fourier_shape(shape, rfft)
    torch.testing.assert_close(fourier.ifft_nd(f, shape, rfft=rfft, fftshift=fftshift), x)
    # the grid's zero frequency sits where the transform puts the mean
    k = fourier.fftfreq_grid(shape, rfft=rfft, fftshift=fftshift)
    zero = (k.abs().sum(-1) == 0).nonzero()[0]
    torch.testing.assert_close(f[(slice(None), *zero)], x.sum(dim=tuple(range(1, x.ndim))) + 0j)


@pytest.mark.parametrize("n", [15, 16])
@pytest.mark.parametrize("dtype", DTYPES)
def test_parseval_with_hermitian_multiplicity(n, dtype):
    x = torch.randn(4, n, n, n, dtype=dtype)
    f = fourier.rfft_3d(x)
    w = fourier.hermitian_multiplicity((n, n, n), dtype=dtype)
    energy_fourier = (w * f.abs() ** 2).sum((-3, -2, -1)) / n**3
    torch.testing.assert_close(
        energy_fourier, (x**2).sum((-3, -2, -1)), rtol=TOL[dtype] * 10, atol=0
    )


def test_shell_sum_counts_samples_like_a_direct_loop():
    n = 12
    shells = fourier.shell_index((n, n), rfft=False)
    counts = fourier.shell_sum(torch.ones(2, n, n), shells, n // 2 + 1)
    k = np.fft.fftfreq(n)
    radius = np.round(np.hypot(*np.meshgrid(k, k, indexing="ij")) * n).astype(int)
    expected = np.bincount(radius.ravel(), minlength=n)[: n // 2 + 1]
    np.testing.assert_array_equal(counts[0].numpy(), expected)
    np.testing.assert_array_equal(counts[1].numpy(), expected)
    with pytest.raises(InvalidInputError):
        fourier.shell_index((8, 10))


@pytest.mark.parametrize("n", [9, 10])
def test_subpixel_shift_of_a_delta_is_the_periodic_sinc(n):
    # Shifting a centred delta by s gives the trigonometric interpolant sampled on the grid:
    # x[m] = (1/N) sum_k exp(2 pi i k (m - c - s) / N), real part (Nyquist split for even N).
    s = np.array([0.3, -1.7])
    x = torch.zeros(n, n, dtype=torch.float64)
    x[n // 2, n // 2] = 1
    out = fourier.shift_2d(x, torch.tensor(s)).numpy()
    m = np.arange(n) - n // 2
    freqs = np.fft.fftfreq(n) * n

    def kernel(shift):
        phase = np.exp(2j * np.pi * np.outer(m - shift, freqs) / n)
        if n % 2 == 0:  # the Nyquist term of a real signal is a cosine
            phase[:, n // 2] = np.cos(np.pi * (m - shift))
        return phase.sum(1).real / n

    expected = np.outer(kernel(s[1]), kernel(s[0]))
    np.testing.assert_allclose(out, expected, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(4, 12), st.integers(-5, 5), st.integers(-5, 5))
def test_integer_shift_equals_roll(n, sx, sy):
    x = torch.randn(2, n, n, dtype=torch.float64)
    shifted = fourier.shift_2d(x, torch.tensor([[sx, sy]], dtype=torch.float64))
    torch.testing.assert_close(shifted, torch.roll(x, shifts=(sy, sx), dims=(-2, -1)))


@settings(max_examples=25, deadline=None)
@given(st.floats(-3, 3), st.floats(-3, 3))
def test_shifts_compose_and_invert(a, b):
    x = torch.randn(9, 9, dtype=torch.float64)
    ta, tb = torch.tensor([a, b], dtype=torch.float64), torch.tensor([b, -a], dtype=torch.float64)
    torch.testing.assert_close(
        fourier.shift_2d(fourier.shift_2d(x, ta), tb), fourier.shift_2d(x, ta + tb)
    )
    torch.testing.assert_close(fourier.shift_2d(fourier.shift_2d(x, ta), -ta), x)


@pytest.mark.parametrize("n_in,n_out", [(32, 20), (33, 20), (32, 21), (31, 16)])
def test_crop_then_pad_restores_a_band_limited_map(n_in, n_out):
    # Band-limit strictly inside the smaller box's Nyquist, then crop and pad back.
    torch.manual_seed(0)
    x = torch.randn(2, n_in, n_in, n_in, dtype=torch.float64)
    k = fourier.fftfreq_grid((n_in,) * 3, rfft=True, dtype=torch.float64)
    keep = torch.linalg.vector_norm(k, dim=-1) * n_in < (n_out // 2 - 1)
    x = fourier.irfft_3d(fourier.rfft_3d(x) * keep, (n_in,) * 3)
    small = fourier.fourier_resize(x, (n_out,) * 3)
    assert small.shape == (2, n_out, n_out, n_out)
    torch.testing.assert_close(small.mean((-3, -2, -1)), x.mean((-3, -2, -1)))
    torch.testing.assert_close(fourier.fourier_resize(small, (n_in,) * 3), x, atol=1e-10, rtol=0)


def test_rescale_bookkeeping_and_gaussian_width():
    # A Gaussian (sigma 3 A) sampled at 1 A and resampled to 1.5 A equals it sampled at 1.5 A.
    n = 48
    r = fourier.real_space_grid((n, n), dtype=torch.float64)
    x = torch.exp(-(r**2).sum(-1) / (2 * 3.0**2))
    y, voxel = fourier.rescale(x, 2, 1.0, 1.5)
    assert y.shape == (32, 32) and voxel == pytest.approx(1.5)
    r2 = fourier.real_space_grid((32, 32), dtype=torch.float64) * 1.5
    torch.testing.assert_close(y, torch.exp(-(r2**2).sum(-1) / (2 * 3.0**2)), atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masks_values_batching_and_dtype(dtype):
    m = fourier.spherical_mask(
        (33, 33, 33), torch.tensor([5.0, 10.0], dtype=dtype), soft_edge_px=4, dtype=dtype
    )
    assert m.shape == (2, 33, 33, 33) and m.dtype == dtype
    assert m[1, 16, 16, 16 + 10] == 1 and m[1, 16, 16, 16 + 14] == 0
    assert float(m[1, 16, 16, 16 + 12]) == pytest.approx(0.5, abs=1e-6)  # half way up the cosine
    hard = fourier.spherical_mask((64, 64), 20.0, dtype=torch.float64)
    assert float(hard.sum()) == pytest.approx(np.pi * 20**2, rel=0.01)
    c = fourier.cylindrical_mask((20, 30, 30), 8.0, 10.0, dtype=dtype)
    assert (
        c[10, 15, 15 + 8] == 1
        and c[10, 15, 15 + 9] == 0
        and c[15, 15, 15] == 1
        and c[16, 15, 15] == 0
    )


def test_gradients_flow_through_shift_and_resize():
    x = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.4, -0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, s: fourier.shift_2d(x, s), (x, s))
    assert torch.autograd.gradcheck(lambda x: fourier.fourier_resize(x, (4, 5)), (x,))
