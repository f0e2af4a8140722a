"""The extension points: a new guide is one YAML file; a new parameterisation is one module and one YAML file.

Both are written here into a directory of the user's own, outside the package, and found
through Hydra's search path, as a user adds them without touching the package.
"""

import json
import sys

import numpy as np
import pytest
from numpyro.infer.util import log_density

from mrp_numpyro import compose_config, prepare, run
from mrp_numpyro.design import SITES
from mrp_numpyro.model import PARAMETERIZATIONS, NonCentred, Parameterization, get_parameterization, register_parameterization

FAST = ["experiment=fast", "progress=false", "report=false"]

GUIDE = """\
# @package _global_
# Mean-field normal, drawn site by site.
defaults:
  - base/autoguide@inference.guide
inference:
  label: autonormal
  guide:
    _target_: numpyro.infer.autoguide.AutoNormal
    init_scale: 0.1
"""

MODULE = '''\
"""Fully centred coordinates: each group's intercepts a_g ~ normal(0, sd_g)."""

from dataclasses import dataclass
from functools import partial

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from mrp_numpyro.design import SITES
from mrp_numpyro.design.layout import pack
from mrp_numpyro.model.base import MRPModel, Parameterization, register_parameterization, survey_likelihood
from mrp_numpyro.model.blocks import block_predictor


def centred_logit(rows, index, trials, successes=None, *, coef_scale, group_names, group_sizes, priors):
    intercept = numpyro.sample(SITES.intercept, dist.Normal(priors.intercept_loc, priors.intercept_scale))
    beta = numpyro.sample(SITES.coefficients, dist.Normal(priors.coef_loc, coef_scale).to_event(1))
    effects = []
    for name, size in zip(group_names, group_sizes):
        sd = numpyro.sample(SITES.sd(name), dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale))
        with numpyro.plate(name, size):
            effects.append(numpyro.sample("a_" + name, dist.Normal(0.0, sd)))
    eta = block_predictor(pack(intercept, beta, effects), rows, index)
    with numpyro.plate_stack("cells", trials.shape):
        numpyro.sample(SITES.observed, dist.Binomial(total_count=trials, logits=eta), obs=successes)


def to_shared(draws, rng_key, *, group_names):
    out = {k: v for k, v in draws.items() if not k.startswith("a_")}
    for name in group_names:
        out[SITES.z(name)] = np.asarray(draws["a_" + name]) / np.asarray(draws[SITES.sd(name)])[:, None]
    return out


@register_parameterization
@dataclass(frozen=True)
class Centred(Parameterization):
    name = "centred"

    def build(self, design, priors, *, dtype=np.float32, max_grid_ratio=2.0, rng_key=None):
        blocks, likelihood = survey_likelihood(design, dtype, max_grid_ratio)
        fn = partial(centred_logit, coef_scale=jnp.asarray(priors.coef_scales(design.x_scale), dtype),
                     group_names=design.group_names, group_sizes=design.group_sizes, priors=priors)
        kwargs = {"rows": tuple(jnp.asarray(r, dtype) for r in blocks.rows), **likelihood}
        latent = design.layout.fixed_sites + tuple(s for g in design.group_names for s in (SITES.sd(g), "a_" + g))
        return MRPModel(design, priors, fn, kwargs, latent_sites=latent,
                        effects=partial(to_shared, group_names=design.group_names), parameterization=self.name)
'''


def _search_path(root):
    return f"hydra.searchpath=[file://{root}]"


def test_a_new_guide_is_one_yaml_file(tmp_path):
    (tmp_path / "conf" / "guide").mkdir(parents=True)
    (tmp_path / "conf" / "guide" / "autonormal.yaml").write_text(GUIDE)
    cfg = compose_config(FAST + [_search_path(tmp_path / "conf"), "guide=autonormal"])
    assert cfg.inference.guide.init_loc_fn._target_ == "numpyro.infer.init_to_mean"  # from the shared base
    run(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["label"] == "autonormal" and summary["guide"] == "AutoNormal"
    assert summary["parameterization"] == "noncentred" and summary["verdict"] in {"pass", "warn", "fail"}
    assert (tmp_path / "run" / "estimates_state.csv").exists() and (tmp_path / "run" / "elbo.csv").exists()


@pytest.fixture
def centred_module(tmp_path, monkeypatch):
    """The example module and its YAML file in a directory of their own; unregistered afterwards."""
    (tmp_path / "centred_coordinates.py").write_text(MODULE)
    conf = tmp_path / "conf" / "model" / "parameterization"
    conf.mkdir(parents=True)
    (conf / "centred.yaml").write_text("# Fully centred coordinates.\n_target_: centred_coordinates.Centred\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    PARAMETERIZATIONS.pop("centred", None)
    sys.modules.pop("centred_coordinates", None)


def test_a_new_parameterisation_is_one_module_and_one_yaml_file(centred_module):
    cfg = compose_config(FAST + [_search_path(centred_module / "conf"), "guide=meanfield", "model/parameterization=centred"])
    problem = prepare(cfg)
    model = problem.model
    assert model.parameterization == "centred" and "centred" in PARAMETERIZATIONS
    # The same posterior in other coordinates: log p(a, sd | y) = log p(z, sd | y) - sum_g n_g log sd_g.
    reference = NonCentred().build(problem.design, problem.priors)
    rng = np.random.default_rng(0)
    z_params = {SITES.intercept: rng.normal(), SITES.coefficients: rng.normal(size=len(problem.design.fixed_names))}
    a_params, jacobian = dict(z_params), 0.0
    for name, size in zip(problem.design.group_names, problem.design.group_sizes):
        sd, z = rng.uniform(0.2, 1.0), rng.normal(size=size)
        z_params[SITES.sd(name)] = a_params[SITES.sd(name)] = sd
        z_params[SITES.z(name)], a_params["a_" + name] = z, sd * z
        jacobian += size * np.log(sd)
    lp_a, _ = log_density(model.fn, (), dict(model.kwargs), a_params)
    lp_z, _ = log_density(reference.fn, (), dict(reference.kwargs), z_params)
    assert float(lp_a) == pytest.approx(float(lp_z) - jacobian, rel=1e-5)
    # And it runs end to end, its draws mapped back to the shared parameters.
    result = run(cfg)
    assert result.summary["parameterization"] == "centred" and result.fit.draws[SITES.z("state")].shape[-1] == 50


def test_the_registry_refuses_a_second_parameterisation_of_one_name_and_unknown_options():
    class Again(Parameterization):
        name = "noncentred"

    with pytest.raises(ValueError, match="registered already"):
        register_parameterization(Again)
    with pytest.raises(ValueError, match=r"takes the option\(s\) \['caution', 'pilot', 'sd_guess'\], not \['sds'\]"):
        get_parameterization("partial", sds={})
    assert type(get_parameterization("identified", grouped=False)).__name__ == "Identified"
