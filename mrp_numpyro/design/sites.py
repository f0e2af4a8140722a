"""The names of the model's sample sites and of the labelled outputs derived from them.

:data:`SITES` is the one place that spells a prefix (``sd_``, ``z_``, ``L_``); the layout
(:mod:`mrp_numpyro.design.layout`), the models and the outputs ask it for every name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SITES", "SiteNames"]


@dataclass(frozen=True)
class SiteNames:
    """Names of the model's sample sites and of the labelled outputs derived from them.

    The shared parameters, which every parameterisation's draws are mapped to
    (``MRPModel.effects``, :class:`~mrp_numpyro.model.base.MRPModel`), are ``Intercept``, ``beta`` and, for each
    varying intercept ``g``, ``sd_<g>`` and ``z_<g>``.
    """

    intercept: str = "Intercept"
    coefficients: str = "beta"
    observed: str = "y"
    #: The identified model's coordinates (:mod:`mrp_numpyro.model.identified`).
    identified: str = "phi"

    def sd(self, group: str) -> str:
        """A varying intercept's standard deviation."""
        return f"sd_{group}"

    def sd_group(self, site: str) -> str | None:
        """The group whose standard deviation ``site`` is (``sd_state`` -> ``state``), or None."""
        prefix = self.sd("")
        return site[len(prefix) :] if site.startswith(prefix) and len(site) > len(prefix) else None

    def z(self, group: str) -> str:
        """A varying intercept's standardised effects ``a_g / sd_g``."""
        return f"z_{group}"

    def centred(self, group: str) -> str:
        """A group's partially centred intercepts ``u`` (:mod:`mrp_numpyro.model.centring`)."""
        return f"u_{group}"

    def standard(self, group: str) -> str:
        """A structured prior's independent standard normals ``e_g`` (:mod:`mrp_numpyro.design.structure`)."""
        return f"e_{group}"

    def rho(self, group: str) -> str:
        """An AR(1) prior's correlation or a BYM2 prior's mixing weight."""
        return f"rho_{group}"

    def slope(self, group: str) -> str:
        """A second-order random walk's linear trend on the logit scale."""
        return f"slope_{group}"

    def effect(self, group: str) -> str:
        """The varying intercepts on the logit scale, ``sd_g * z_g`` (rstanarm's ``b[...]``), in the outputs."""
        return f"r_{group}"

    def cholesky(self, term: str) -> str:
        """The Cholesky factor of a correlated term's correlation matrix."""
        return f"L_{term}"

    def correlation(self, term: str) -> str:
        """A correlated term's correlation matrix (a shared parameter)."""
        return f"cor_{term}"

    def covariance_prior(self, term: str) -> str:
        """The factor that turns a correlated term's independent gamma sds into rstanarm's ``decov`` prior."""
        return f"decov_{term}"


#: The names of every sample site (:class:`~mrp_numpyro.design.sites.SiteNames`).
SITES = SiteNames()
