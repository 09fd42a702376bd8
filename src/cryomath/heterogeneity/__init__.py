"""Heterogeneity: how particles differ in conformation (issue 18).

* :func:`fit_principal_components`: probabilistic PCA of 3-D structure by EM with known poses
  (Tagare et al. 2015; cryoSPARC's 3DVA model): eigenvolumes, variances, latent coordinates.
* :func:`estimate_covariance`: the covariance of 3-D structure (Katsevich et al. 2015) in a
  subspace sketched from its columns (as RECOVAR does), its eigenvolumes and latents.
* :func:`kernel_regression_maps`: maps at chosen latent points, every particle weighted by a
  kernel of its latent distance.
* :func:`kmeans`: discrete states from latent coordinates.
* CryoBench's measures (:mod:`cryomath.heterogeneity.metrics`), which score any method's maps,
  latents and labels against a simulation's truth (``simulate.conformations``).

Above ``imaging``, beside ``reconstruction`` and ``resolution``.
"""

from cryomath.heterogeneity.clustering import Clusters, kmeans
from cryomath.heterogeneity.covariance import estimate_covariance
from cryomath.heterogeneity.kernel import KernelMaps, kernel_regression_maps
from cryomath.heterogeneity.metrics import (
    LatentCorrelation,
    adjusted_rand_index,
    fsc_auc,
    latent_correlation,
)
from cryomath.heterogeneity.ppca import PrincipalComponents, fit_principal_components

__all__ = [
    "Clusters",
    "KernelMaps",
    "LatentCorrelation",
    "PrincipalComponents",
    "adjusted_rand_index",
    "estimate_covariance",
    "fit_principal_components",
    "fsc_auc",
    "kernel_regression_maps",
    "kmeans",
    "latent_correlation",
]
