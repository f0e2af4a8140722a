"""The inference methods' pieces that need no fit: the chain plan, the records, the resampling key."""

import jax
import numpy as np
import pytest

from mrp_numpyro.diagnostics import psis, verdict
from mrp_numpyro.inference import NUTSDiagnostics, SVIDiagnostics
from mrp_numpyro.inference.chains import plan_chains
from mrp_numpyro.inference.svi import Checked, correct


@pytest.mark.parametrize(
    ("chains", "devices", "backend", "progress", "method", "runs", "note"),
    [
        (4, 4, "cpu", False, "parallel", (4,), None),
        (4, 8, "cpu", False, "parallel", (4,), None),
        (
            4,
            2,
            "cpu",
            False,
            "2 devices, chains in turn on each",
            (4,),
            "2 JAX device(s) for 4 chains: 2 devices, chains in turn on each",
        ),
        (4, 2, "cpu", True, "parallel", (2, 2), "2 JAX device(s) for 4 chains: batches of 2"),
        # 4 chains on 3 devices use 2 of them.
        (
            4,
            3,
            "cpu",
            False,
            "2 devices, chains in turn on each",
            (4,),
            "3 JAX device(s) for 4 chains: 2 devices, chains in turn on each",
        ),
        (4, 1, "cpu", False, "sequential", (4,), "1 JAX device(s) for 4 chains: sequential"),
        (4, 1, "gpu", False, "vectorized", (4,), "1 JAX device(s) for 4 chains: vectorized"),
        (1, 2, "cpu", False, "sequential", (1,), None),
    ],
)
def test_chain_plan(chains, devices, backend, progress, method, runs, note):
    plan = plan_chains(chains, "auto", devices, backend, progress)
    assert (plan.name, plan.runs, plan.note) == (method, runs, note)


def test_chain_plan_takes_numpyros_methods_as_given_and_refuses_others():
    assert plan_chains(4, "vectorized", 2, "cpu").runs == (4,)
    with pytest.raises(ValueError, match="chain_method must be one of"):
        plan_chains(4, "threads", 2, "cpu")


def _svi_diagnostics(**changes):
    fields = dict(
        guide="AutoDiagonalNormal",
        num_steps=100,
        steps_run=100,
        converged=False,
        plateau_rtol=None,
        plateau_rel_change=float("nan"),
        num_particles=1,
        num_draws=10,
        psis_draws=20,
        final_elbo=-1.0,
        final_elbo_se=0.1,
        elbo_window=50,
        nonfinite_steps=0,
        khat=0.5,
        khat_spread=0.05,
        psis_ess=8.0,
        importance_resampled=True,
        distinct_draws=7,
        verdict=verdict(0.5),
        optimise_s=1.0,
        check_s=0.5,
    )
    return SVIDiagnostics(**{**fields, **changes})


def test_svi_record_writes_the_summary_keys_in_their_order():
    d = _svi_diagnostics()
    keys = list(d.to_dict())
    assert keys[keys.index("distinct_draws") + 1 : keys.index("distinct_draws") + 3] == ["verdict", "verdict_message"]
    assert keys[0] == "guide" and keys[-2:] == ["optimise_s", "check_s"]
    assert d.to_dict()["verdict"] == "pass" and d.verdict.passed
    # It reads as the mapping of that form, as summary.json holds it.
    assert d["khat"] == 0.5 and d.get("divergences") is None and dict(d) == d.to_dict()


def test_nuts_record():
    d = NUTSDiagnostics(4, 10, 10, "parallel", 0.95, 2, 7.5, 1.002, 420.0, 380.0)
    assert d.to_dict() == {
        "num_chains": 4,
        "num_warmup": 10,
        "num_samples": 10,
        "chain_method": "parallel",
        "target_accept_prob": 0.95,
        "divergences": 2,
        "mean_leapfrog_steps": 7.5,
        "max_rhat": 1.002,
        "min_ess_bulk": 420.0,
        "min_ess_tail": 380.0,
    }


def test_resampling_is_seeded_by_the_key_bits_typed_or_raw():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    log_ratios = -0.5 * x**2 * 0.2
    checked = Checked({"x": x}, log_ratios, psis(log_ratios))
    raw, typed = jax.random.PRNGKey(3), jax.random.wrap_key_data(jax.random.PRNGKey(3))
    a, resampled, distinct = correct(checked, raw, 500)
    b, _, _ = correct(checked, typed, 500)
    assert resampled and 1 < distinct <= 500
    np.testing.assert_array_equal(a["x"], b["x"])
    # Not resampled where k-hat forbids it, or when switched off: the first draws as they are.
    same, resampled, distinct = correct(checked, raw, 500, importance_resampling=False)
    assert not resampled and distinct == 500
    np.testing.assert_array_equal(same["x"], x[:500])
