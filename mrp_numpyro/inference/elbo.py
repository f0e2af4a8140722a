"""The sticking-the-landing ELBO estimator.

Roeder, Wu and Duvenaud (2017), "Sticking the landing: simple, lower-variance gradient
estimators for variational inference": in the reparameterised ELBO gradient, the score
term of ``log q`` has zero mean and only adds noise. Evaluating ``log q`` at the
reparameterised draw with the guide's parameters held constant drops it, and the gradient
then vanishes draw by draw when q equals the posterior, so the optimum is reached with far
less noise than :class:`numpyro.infer.Trace_ELBO` gives. The guide must be able to
evaluate its own density at a given draw (every normal and affine-coupling guide here can;
numpyro's IAF cannot invert its flow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.lax import stop_gradient
from numpyro.handlers import replay, seed, substitute, trace
from numpyro.infer.elbo import ELBO
from numpyro.infer.util import log_density

__all__ = ["StickingTheLandingELBO"]


class StickingTheLandingELBO(ELBO):
    """Negative ELBO whose gradient leaves out the score term of the guide's density.

    The value is the same as :class:`numpyro.infer.Trace_ELBO`'s; only the gradient differs.

    Parameters
    ----------
    num_particles : int
        Draws averaged per step.
    """

    def loss_with_mutable_state(
        self,
        rng_key: jax.Array,
        param_map: dict[str, jax.Array],
        model: Callable[..., Any],
        guide: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, jax.Array | None]:
        """Negative ELBO averaged over ``num_particles`` draws, its gradient without the score term."""

        def single(key: jax.Array) -> jax.Array:
            seeded = seed(guide, key)
            guide_trace = trace(substitute(seeded, data=param_map)).get_trace(*args, **kwargs)
            values = {name: site["value"] for name, site in guide_trace.items() if site["type"] == "sample"}
            frozen = jax.tree_util.tree_map(stop_gradient, param_map)
            # log q at the draw (which still depends on the parameters) under frozen parameters.
            log_q, _ = log_density(seeded, args, kwargs, {**frozen, **values})
            log_p, _ = log_density(replay(model, guide_trace), args, kwargs, param_map)
            return log_p - log_q

        elbos = jax.vmap(single)(jax.random.split(rng_key, self.num_particles))
        return {"loss": -jnp.mean(elbos), "mutable_state": None}
