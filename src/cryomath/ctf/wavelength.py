"""The relativistic electron wavelength, from CODATA 2018 exact constants."""

import torch

PLANCK_J_S = 6.62607015e-34
ELECTRON_MASS_KG = 9.1093837015e-31
ELEMENTARY_CHARGE_C = 1.602176634e-19
SPEED_OF_LIGHT_M_S = 299792458.0


def electron_wavelength_angstrom(voltage_kv):
    """``lambda = h / sqrt(2 m e V (1 + e V / (2 m c^2)))`` in Angstrom (0.0196875 at 300 kV).
    Takes a float or a tensor; tensors are evaluated in float64 (the SI intermediates underflow
    float32) and returned in their own dtype."""
    dtype = voltage_kv.dtype if isinstance(voltage_kv, torch.Tensor) else None
    if dtype is not None:
        voltage_kv = voltage_kv.double()
    energy = ELEMENTARY_CHARGE_C * voltage_kv * 1e3
    momentum_sq = (
        2
        * ELECTRON_MASS_KG
        * energy
        * (1 + energy / (2 * ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S**2))
    )
    wavelength = PLANCK_J_S / momentum_sq**0.5 * 1e10
    return wavelength if dtype is None else wavelength.to(dtype)
