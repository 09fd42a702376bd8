"""The posterior over pose hypotheses (``inference.posterior``) with its exponential as
``exp2`` against the same steps with ``torch.exp`` (as before 2026-12-07), in the same run:
a coarse pass's scores, 256 images x 29 offsets x 4,608 orientations in float32, spread as a
posterior's are (most hypotheses hundreds to thousands below the best, where torch's ``exp``
takes a slow path) and narrowly (all within a few units). Best of ``--repeat``, interleaved.

    python bench/posterior.py [--threads 1] [--repeat 5]
"""

import argparse

import torch
from measure import interleaved_best

from cryomath.inference import offset_log_prior, posterior


def with_exp(scores, log_prior_shifts, log_prior_references):
    """The old posterior's weights and evidence: the same steps, ``torch.exp``."""
    total = scores + log_prior_shifts[..., None] + log_prior_references
    flat = total.flatten(1)
    top = flat.amax(1, keepdim=True)
    weights = torch.sub(flat, top).exp_()
    total = weights.sum(1)
    return weights / total[:, None], top[:, 0] + torch.log(total)


def compare(spread: float, repeat: int) -> None:
    """Time both at scores of standard deviation ``spread`` and print them."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(256, 29, 4608, generator=g) * spread
    shifts = torch.randn(29, 2, generator=g)
    prior_s = offset_log_prior(shifts, torch.randn(256, 2, generator=g), 2.0)
    prior_r = torch.full((4608,), -8.4)
    best, results = interleaved_best({
        "torch.exp": (lambda: None, lambda _: with_exp(scores, prior_s, prior_r)),
        "exp2 (default)": (lambda: None, lambda _: posterior(scores, prior_s, prior_r,
                                                             count_significant=False)),
    }, repeat)  # fmt: skip
    (weights, evidence), result = results["torch.exp"], results["exp2 (default)"]
    error = float((result.weights.flatten(1) - weights).abs().max())
    evidence_error = float((result.log_evidence - evidence).abs().max())
    old, new = best["torch.exp"], best["exp2 (default)"]
    print(f"scores of sd {spread:g}: torch.exp {old:.3f} s, exp2 {new:.3f} s, {old / new:.2f}x "
          f"(weights differ by {error:.1e} at most, log evidence by "
          f"{evidence_error:.1e})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU, {args.threads} thread(s), float32, torch {torch.__version__}")
    for spread in (1000.0, 3.0):
        compare(spread, args.repeat)


if __name__ == "__main__":
    main()
