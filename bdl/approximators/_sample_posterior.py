"""The posterior of a sampler: the kept draws of all chains, with their chain structure."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from bdl._warnings import NonFiniteError
from bdl.approximators._diagnostics import (
    chain_diagnostics,
    check_diagnostics,
    format_diagnostics,
    sampler_statistics,
    to_inference_data,
)
from bdl.approximators._method import register_posterior
from bdl.approximators._posterior import ParticlePosterior
from bdl.approximators._sampling_loop import LoopState
from bdl.likelihoods import Likelihood
from bdl.models import Network, Params


class SamplePosterior(ParticlePosterior):
    """MCMC draws as particles: ``particles`` holds the ``C * D`` kept draws chain-major
    (chain 0's D draws first); ``predict`` is the equally weighted mixture over all of them.

    ``info`` holds ``num_chains``, ``diagnostics`` (split R-hat / ESS per parameter, and for
    HMC/NUTS acceptance rate and divergences), ``draw_info`` (per-draw sampler statistics
    ``[C, D]``) and ``timing``.
    """

    kind: ClassVar[str] = "samples"

    @property
    def num_chains(self) -> int:
        return int(self.info["num_chains"])

    @property
    def diagnostics(self) -> dict[str, Any]:
        """Split R-hat and ESS (overall and per parameter array), sampler statistics."""
        return self.info["diagnostics"]

    def chains(self) -> Params:
        """The draws with their chain structure: every leaf ``[C, D, ...]``."""
        c = self.num_chains
        if self.num_particles % c:
            raise ValueError(f"{self.num_particles} particles do not split into {c} chains.")
        return jax.tree.map(lambda a: a.reshape(c, -1, *a.shape[1:]), self.particles)

    def summary(self) -> str:
        """The diagnostics as a few printable lines."""
        return format_diagnostics(self.diagnostics)

    def to_arviz(self):
        """An ArviZ ``InferenceData`` of the draws (``posterior`` group, ``[chain, draw, ...]``
        arrays named ``"net.<path>"`` / ``"lik.<name>"``) and sampler statistics. Needs the
        optional dependency ``arviz``."""
        return to_inference_data(self.chains(), self.info.get("draw_info", {}))


register_posterior(SamplePosterior, ("particles",))


def assemble_posterior(
    method: str,
    network: Network,
    likelihood: Likelihood,
    input_shape: tuple[int, ...],
    state: LoopState,
    num_sampling_steps: int,
    info: dict[str, Any],
    advice: dict[str, str],
) -> SamplePosterior:
    """Flatten the kept draws ``[C, D, ...]`` into particles, compute the diagnostics and warn
    (``bdl.DiagnosticsWarning``, see ``check_diagnostics``) if they say the draws are not to be
    trusted; ``advice`` names the options to change."""
    draws = jax.device_get(state.draws)
    c, d = jax.tree.leaves(draws)[0].shape[:2]
    finite = np.ones((c, d), bool)
    for leaf in jax.tree.leaves(draws):
        finite &= np.all(np.isfinite(leaf.reshape(c, d, -1)), axis=-1)
    if not finite.all():  # the loop raises first; a last guard that no NaN is returned
        raise NonFiniteError(f"{method}: {int((~finite).sum())} of {c * d} draws hold NaN or "
                             "inf values; lower `step_size`.")
    diagnostics = {"num_chains": int(c), "num_draws": int(d),
                   "num_sampling_steps": int(num_sampling_steps), **chain_diagnostics(draws),
                   **sampler_statistics(jax.device_get(state.totals), num_sampling_steps),
                   "nonfinite_draws": 0}
    # stacklevel: the warning points at the caller of bdl.fit
    diagnostics["problems"] = check_diagnostics(method, diagnostics, advice, stacklevel=5)
    particles = jax.tree.map(lambda a: jnp.asarray(a.reshape(c * d, *a.shape[2:])), draws)
    info = {"num_chains": int(c), "num_draws": int(d), "diagnostics": diagnostics,
            "draw_info": {k: np.asarray(v) for k, v in jax.device_get(state.draw_info).items()},
            **info}
    return SamplePosterior(method, network, likelihood, particles, info, tuple(input_shape))
