"""A neural model of heterogeneity with known poses and CTFs: cryoDRGN's variational
autoencoder (Zhong et al. 2021) or, with ``autodecoder``, a table of latents optimised with
the decoder (no encoder, as cryoDRGN-AI; Levy et al. 2024).

* Decoder: :class:`~cryomath.heterogeneity.fourier_field.FourierField` ``V(k, z)``, evaluated
  at each image's central-slice frequencies ``k = kx A[0] + ky A[1]`` (RELION's ``A``;
  ``projection.slice_coordinates``) up to ``max_shell``.
* Encoder (VAE): an MLP of the image in real space (origins undone, outside the circle of
  radius ``n / 2`` dropped) to the mean and log-variance of ``q(z | X)``.
* Objective per image: the Gaussian negative log-likelihood of the imaging layer,
  ``1/2 sum w |X - C V(k, z)|^2`` with ``w = m / (2 sigma2)`` (``heterogeneity.projected``, the
  noise from the images' background), plus ``beta`` times the KL divergence from ``N(0, I)``
  (VAE; with ``beta`` rising from 0 over the first epochs: at SNR 0.1 a VAE that pays the
  full KL from the start learns to use ``z`` several epochs later, measured) or ``|z|^2 / 2``
  (autodecoder: the MAP latent); minimised by Adam over minibatches in
  a seeded random order (the table by sparse Adam: a latent moves only with its image), at a
  tenth of the learning rates for the last quarter of the epochs (measured on the continuous
  test set: 0.878 -> 0.890 after 20 epochs).
* Latents (``latents``): each image's posterior mean and standard deviation under the trained
  decoder. ``laplace_steps`` Gauss-Newton steps of ``nll + |z|^2 / 2`` from the encoder's
  mean (or the table's latent) give Laplace's Gaussian (the Gauss-Newton precision as its
  inverse covariance); that Gaussian, 1.5 times wider, is the proposal of a self-normalised
  importance sampler with ``posterior_samples`` antithetic draws, whose weighted mean and
  spread are the posterior's. The encoder alone amortises inference and leaves a gap
  (semi-amortised inference, Kim et al. 2018), and the mode is not the mean where the
  likelihood is flat; measured on the continuous test set (8 epochs of a 64-wide decoder):
  latent correlation 0.857 (encoder) -> 0.895 (Laplace's mode) -> 0.9015 (posterior mean;
  its quadrature on a grid: the same to 0.007 median).
* The decoder models the difference from the consensus map (given: a direct reconstruction
  of all particles), whose images ``C P mu`` the imaging layer predicts: training starts at
  the conformations instead of spending its first epochs on the average.
* Spectra are divided by one ``scale`` (their RMS in the band, from the first chunk) so the
  field's outputs are of order one.
"""

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from cryomath.errors import InvalidInputError
from cryomath.fourier.fft import complex_dtype, ifft_nd
from cryomath.fourier.masks import spherical_mask
from cryomath.heterogeneity.fourier_field import FourierField, slice_samples
from cryomath.imaging import NoiseSpectrum, ParticleBatch, predict_spectra
from cryomath.projection import prepare_volume


@dataclass(frozen=True)
class NeuralSettings:
    """The model and its training: ``max_shell`` default ``n // 3``; learning rates for the
    networks and (autodecoder) the latent table; ``beta`` the KL weight, reached linearly
    over the first ``beta_warmup_epochs`` (from 0: KL annealing, Bowman et al. 2016);
    ``laplace_steps`` Gauss-Newton steps to each latent's posterior mode and
    ``posterior_samples`` (even) importance samples of its mean (module docstring; 0: the mode
    and Laplace's sd, at 64^2 a fifth of the cost)."""

    latent_dim: int = 1
    autodecoder: bool = False
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 3e-3
    latent_learning_rate: float = 1e-2
    beta: float = 1.0
    beta_warmup_epochs: int = 4
    width: int = 128
    depth: int = 3
    encoder_width: int = 256
    max_shell: int | None = None
    seed: int = 0
    laplace_steps: int = 2
    posterior_samples: int = 32


@dataclass
class _Observed:
    """What the objective needs of a minibatch: frequencies ``k (B, S, 3)``, spectra, CTFs
    ``(B, S)``, whitened weights ``(B, S)``, encoder inputs ``(B, n^2)``, rows ``(B,)``."""

    k: torch.Tensor
    spectra: torch.Tensor
    ctf: torch.Tensor
    weights: torch.Tensor
    images: torch.Tensor
    indices: torch.Tensor

    def take(self, pick: torch.Tensor) -> "_Observed":
        return _Observed(*(v[pick] for v in (self.k, self.spectra, self.ctf, self.weights,
                                             self.images, self.indices)))  # fmt: skip


class _Encoder(torch.nn.Module):
    def __init__(self, pixels: int, width: int, latent_dim: int, dtype):
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(pixels, width, dtype=dtype), torch.nn.ReLU(),
            torch.nn.Linear(width, width, dtype=dtype), torch.nn.ReLU(),
            torch.nn.Linear(width, 2 * latent_dim, dtype=dtype),
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.mlp(images).chunk(2, -1)
        return mean, log_var.clamp(-20, 10)


class NeuralModel:
    """The decoder, the encoder or latent table, their optimisers and the epoch count (a
    checkpoint is this object); built from the first chunk of particles, which sets the
    scales."""

    def __init__(self, first: ParticleBatch, n_particles: int, voxel_size_angstrom: float,
                 noise: NoiseSpectrum, settings: NeuralSettings, consensus: torch.Tensor,
                 dtype: torch.dtype = torch.float32):  # fmt: skip
        if (settings.latent_dim < 1 or settings.epochs < 0 or settings.batch_size < 1
                or settings.laplace_steps < 1 or settings.posterior_samples < 0
                or settings.posterior_samples % 2):  # fmt: skip
            raise InvalidInputError(
                "need a latent dimension, epochs >= 0, a batch size >= 1, laplace_steps >= 1 "
                "and an even posterior_samples >= 0"
            )
        n = first.image_size
        self.settings, self.n, self.voxel, self.noise = settings, n, voxel_size_angstrom, noise
        self.max_shell = n // 3 if settings.max_shell is None else settings.max_shell
        self.n_particles, self.epoch, self.losses = n_particles, 0, []
        self.dtype, self.device = dtype, first.device
        self.scale, self.image_scale = 1.0, 1.0  # observe() divides by them: measured raw
        self.consensus = consensus.to(self.device, torch.float64)
        self.consensus_spectrum = prepare_volume(
            self.consensus, 2.0, voxel_size_angstrom=voxel_size_angstrom
        )
        raw = self.observe(first)
        self.scale = float(raw.spectra.abs().pow(2).mean().sqrt())
        self.image_scale = float(raw.images.std())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            self.decoder = FourierField(n, settings.latent_dim, settings.width, settings.depth,
                                        dtype=dtype).to(self.device)  # fmt: skip
            if settings.autodecoder:
                self.table = torch.nn.Embedding(n_particles, settings.latent_dim, sparse=True,
                                                dtype=dtype, device=self.device)  # fmt: skip
                torch.nn.init.normal_(self.table.weight, std=0.1)
                self.table_optimiser = torch.optim.SparseAdam(
                    self.table.parameters(), settings.latent_learning_rate
                )
                networks = list(self.decoder.parameters())
            else:
                self.encoder = _Encoder(n * n, settings.encoder_width, settings.latent_dim,
                                        dtype).to(self.device)  # fmt: skip
                networks = [*self.decoder.parameters(), *self.encoder.parameters()]
        self.optimiser = torch.optim.Adam(networks, settings.learning_rate)

    def _rates(self):
        pairs = [(self.optimiser, self.settings.learning_rate)]
        if self.settings.autodecoder:
            pairs.append((self.table_optimiser, self.settings.latent_learning_rate))
        return pairs

    def observe(self, batch: ParticleBatch) -> _Observed:
        """The batch's in-band samples, scaled (module docstring), in the model's dtype."""
        n = batch.image_size
        if n != self.n or batch.rotations is None:
            raise InvalidInputError(f"need {self.n}-pixel images with poses, got {n} pixels")
        residual = batch.centred(batch.spectra - predict_spectra(self.consensus_spectrum, batch))
        seen = slice_samples(batch, residual, self.noise, self.voxel, self.max_shell)
        circle = spherical_mask((n, n), n / 2, dtype=batch.dtype, device=batch.device)
        images = ifft_nd(residual, (n, n), rfft=True) * circle / self.image_scale
        real, cplx = self.dtype, complex_dtype(self.dtype)
        return _Observed(
            seen.k.to(real), (seen.spectra / self.scale).to(cplx), seen.ctf.to(real),
            (seen.weights * self.scale**2).to(real), images.flatten(1).to(real),
            batch.indices.to(self.device),
        )  # fmt: skip

    def _latent(self, seen: _Observed, generator=None):
        """``z (B, D)`` (the VAE's drawn from ``q(z | X)``) and the per-image prior term (KL or
        ``|z|^2 / 2``)."""
        if self.settings.autodecoder:
            z = self.table(seen.indices)
            return z, 0.5 * (z * z).sum(-1)
        mean, log_var = self.encoder(seen.images)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        z = mean + (0.5 * log_var).exp() * noise.to(mean.device)
        kl = 0.5 * (mean * mean + log_var.exp() - 1 - log_var).sum(-1)
        return z, kl

    def predict(self, seen: _Observed, z: torch.Tensor) -> torch.Tensor:
        """``(B, S)``: each image's predicted in-band spectrum ``C V(k, z)`` at ``z (B, D)``."""
        return seen.ctf * self.decoder(seen.k, z[:, None, :])

    def nll(self, seen: _Observed, z: torch.Tensor) -> torch.Tensor:
        """``(B,)``: each image's Gaussian negative log-likelihood at its latent ``z (B, D)``."""
        residual = seen.spectra - self.predict(seen, z)
        return 0.5 * (seen.weights * residual.abs().pow(2)).sum(-1)

    def objective(self, seen: _Observed, generator=None) -> torch.Tensor:
        """The mean over the minibatch of ``nll + beta * prior``, per sample."""
        z, prior = self._latent(seen, generator)
        nll = self.nll(seen, z)
        beta = self.settings.beta
        if not self.settings.autodecoder:
            beta *= min(1.0, self.epoch / max(self.settings.beta_warmup_epochs, 1))
        return (nll + beta * prior).mean() / seen.k.shape[1]

    def train_epoch(self, chunks: Iterable[ParticleBatch],
                    progress: Callable[[int], None] | None = None) -> float:  # fmt: skip
        """One pass over ``chunks`` (batches in a random order, e.g. of 1,024 particles), each
        cut into shuffled minibatches; returns the mean objective."""
        g = torch.Generator().manual_seed(self.settings.seed * 100003 + self.epoch)
        final = self.epoch >= 0.75 * self.settings.epochs  # the last quarter: a tenth the rate
        for optimiser, rate in self._rates():
            for group in optimiser.param_groups:
                group["lr"] = rate * (0.1 if final else 1.0)
        total, count = 0.0, 0
        for batch in chunks:
            seen = self.observe(batch)
            order = torch.randperm(len(seen.indices), generator=g).to(self.device)
            for part in order.split(self.settings.batch_size):
                loss = self.objective(seen.take(part), g)
                if not bool(torch.isfinite(loss)):
                    raise InvalidInputError(f"the training diverged in epoch {self.epoch + 1} "
                                            "(the objective is not finite): lower the learning "
                                            "rate")  # fmt: skip
                self.optimiser.zero_grad()
                if self.settings.autodecoder:
                    self.table_optimiser.zero_grad()
                loss.backward()
                self.optimiser.step()
                if self.settings.autodecoder:
                    self.table_optimiser.step()
                total, count = total + float(loss.detach()) * len(part), count + len(part)
            if progress is not None:
                progress(len(seen.indices))
        self.epoch += 1
        self.losses.append(total / max(count, 1))
        return self.losses[-1]

    def laplace(self, seen: _Observed, z: torch.Tensor, steps: int):
        """Each image's latent posterior under the decoder from ``z (B, D)``: ``steps``
        Gauss-Newton steps of ``nll + |z|^2 / 2``; the mean ``(B, D)`` and the Gauss-Newton
        precision ``J^H W J + I`` ``(B, D, D)`` at the last step's start (the Jacobian ``J`` of
        the predicted spectra by forward-mode differentiation, one pass per dimension)."""
        eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
        precision = eye.expand(len(z), -1, -1)
        predict = functools.partial(self.predict, seen)
        for _ in range(steps):
            pairs = [torch.func.jvp(predict, (z,), (e.expand_as(z),)) for e in eye]
            jacobian = torch.stack([column for _, column in pairs], -1)  # (B, S, D)
            weighted = seen.weights[..., None] * jacobian.conj()
            residual = seen.spectra - pairs[0][0]
            gradient = (weighted * residual[..., None]).real.sum(1) - z
            precision = torch.einsum("bsd,bse->bde", weighted, jacobian).real + eye
            z = z + torch.linalg.solve(precision, gradient[..., None])[..., 0]
        return z, precision

    def posterior(self, seen: _Observed, z: torch.Tensor, precision: torch.Tensor):
        """Each image's latent posterior mean ``(B, D)`` and covariance ``(B, D, D)`` by
        self-normalised importance sampling from Laplace's Gaussian at ``z`` with
        ``precision``, 1.5 times wider (a proposal must not be narrower than its target):
        ``posterior_samples`` seeded draws in antithetic pairs ``z +- L e``."""
        half = torch.randn(self.settings.posterior_samples // 2, z.shape[-1], dtype=z.dtype,
                           generator=torch.Generator().manual_seed(self.settings.seed))  # fmt: skip
        draws = torch.cat([half, -half]).to(z.device)  # (M, D)
        root = torch.linalg.cholesky(torch.linalg.inv(precision)) * 1.5  # (B, D, D)
        samples = z[:, None, :] + torch.einsum("bde,me->bmd", root, draws)  # (B, M, D)
        log_target = torch.stack([-self.nll(seen, v) for v in samples.unbind(1)], -1)
        log_target = log_target - 0.5 * (samples * samples).sum(-1)
        weights = torch.softmax(log_target + 0.5 * (draws * draws).sum(-1), -1)[..., None]
        mean = (weights * samples).sum(1)
        spread = samples - mean[:, None, :]
        return mean, torch.einsum("bm,bmd,bme->bde", weights[..., 0], spread, spread)

    @torch.no_grad()
    def latents(self, batches: Iterable[ParticleBatch]):
        """Every particle's latent posterior mean ``(N, D)`` and standard deviation (module
        docstring), in the order of the batches' ``indices``."""
        rows, means, sds = [], [], []
        for batch in batches:
            chunk = self.observe(batch)
            # a training minibatch at a time: the decoder's (images x samples x width)
            # activations, not the chunk's, set the peak memory
            for part in torch.arange(len(chunk.indices)).split(self.settings.batch_size):
                seen = chunk.take(part.to(chunk.indices.device))
                if self.settings.autodecoder:
                    start = self.table(seen.indices)
                else:
                    start = self.encoder(seen.images)[0]
                mode, precision = self.laplace(seen, start, self.settings.laplace_steps)
                if self.settings.posterior_samples:
                    mean, covariance = self.posterior(seen, mode, precision)
                else:
                    mean, covariance = mode, torch.linalg.inv(precision)
                rows.append(seen.indices.cpu())
                means.append(mean.double().cpu())
                sds.append(covariance.diagonal(dim1=-2, dim2=-1).sqrt().double().cpu())
        order = torch.cat(rows).argsort()
        return torch.cat(means)[order], torch.cat(sds)[order]

    def volume(self, z: torch.Tensor) -> torch.Tensor:
        """The ``(n, n, n)`` map (float64, the images' units) at the latent ``z (D,)``: the
        consensus plus the decoder's difference."""
        z = torch.as_tensor(z, dtype=self.dtype, device=self.device)
        return self.consensus + self.decoder.volume(z, self.max_shell).double() * self.scale
