"""Reference numbers for ``brainmass_eqx.objectives`` / ``brainmass_eqx.metrics``.

Run this module INSIDE the brainmass 0.1.1 environment (it imports brainmass and
braintools, which the package itself never does)::

    cd /work/main && ~/.cache/bmx/venv-bm/bin/python -c \
        "import tools.reference_cases.objectives as m; m.main('tests/data/reference')"

It writes ``<outdir>/objectives/example_signal.npz`` holding two signals (brainmass's
bundled ``example_signal`` and a deterministic perturbed, time-shifted copy of it) and
the values brainmass 0.1.1 (float32, its default) gives for every objective, plus
``braintools.metric``'s FC, FCD and Welch PSD of the first signal.
"""

from __future__ import annotations

import os

import numpy as np

#: A fixed perturbation, so the file is reproducible bit for bit.
_SEED = 20240611
_SHIFT = 7
_NOISE = 0.3


def _signals():
    import brainmass
    import brainunit as u

    sig = brainmass.datasets.load_dataset("example_signal")
    a = np.asarray(sig.signal, dtype=np.float64)
    rng = np.random.default_rng(_SEED)
    b = np.roll(a, _SHIFT, axis=0) + _NOISE * rng.standard_normal(a.shape)
    dt_ms = float(sig.dt.to_decimal(u.ms))
    return a, b, dt_ms


def main(outdir):
    """Write ``<outdir>/objectives/example_signal.npz``; return its path."""
    import brainmass
    import braintools
    import brainunit as u
    import jax.numpy as jnp

    obj = brainmass.objectives
    metric = braintools.metric
    a, b, dt_ms = _signals()
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    out = {
        "signal_a": a,
        "signal_b": b,
        "dt_ms": np.asarray(dt_ms),
        "brainmass_version": np.asarray(brainmass.__version__),
        "braintools_version": np.asarray(braintools.__version__),
    }

    out["timeseries_rmse"] = obj.timeseries_rmse()(ja, jb)
    out["fc_corr"] = obj.fc_corr()(ja, jb)
    out["fc_corr_loss"] = obj.fc_corr(as_loss=True)(ja, jb)
    out["fc_rmse"] = obj.fc_rmse()(ja, jb)
    out["cosine_sim"] = obj.cosine_sim()(ja, jb)
    out["cosine_sim_loss"] = obj.cosine_sim(as_loss=True, epsilon=1e-8)(ja, jb)

    midpoints = jnp.linspace(-0.99, 0.99, 100)
    out["midpoints"] = midpoints
    for w, s in ((30, 5), (50, 10)):
        tag = f"w{w}_s{s}"
        fcd_fn = obj.fcd(window_size=w, step_size=s)
        fcd_a = fcd_fn(ja)
        fcd_b = fcd_fn(jb)
        out[f"fcd_a_{tag}"] = fcd_a
        out[f"fcd_b_{tag}"] = fcd_b
        out[f"fcd_corr_{tag}"] = fcd_fn(ja, jb)
        out[f"fcd_corr_loss_{tag}"] = obj.fcd(window_size=w, step_size=s, as_loss=True)(ja, jb)
        dens_a = obj.fcd_distribution(fcd_a)
        dens_b = obj.fcd_distribution(fcd_b)
        out[f"fcd_density_a_{tag}"] = dens_a
        out[f"fcd_density_b_{tag}"] = dens_b
        out[f"ks_distance_{tag}"] = obj.ks_distance(dens_a, dens_b)
        out[f"wasserstein_1d_{tag}"] = obj.wasserstein_1d(dens_a, dens_b, midpoints)
        out[f"fcd_ks_{tag}"] = obj.fcd_ks(window_size=w, step_size=s)(ja, jb)
        out[f"fcd_wasserstein_{tag}"] = obj.fcd_wasserstein(window_size=w, step_size=s)(ja, jb)

    # Non-default KDE settings: a scalar bandwidth factor, Silverman's rule, the
    # diagonal included, no renormalisation, a coarser grid.
    fcd_a = out["fcd_a_w30_s5"]
    grid = jnp.linspace(-0.9, 0.9, 37)
    out["grid_coarse"] = grid
    out["fcd_density_a_bw0.3"] = obj.fcd_distribution(fcd_a, bw_method=0.3)
    out["fcd_density_a_silverman"] = obj.fcd_distribution(fcd_a, bw_method="silverman")
    out["fcd_density_a_ndiag0_raw"] = obj.fcd_distribution(fcd_a, n_diag=0, normalize=False)
    out["fcd_density_a_coarse"] = obj.fcd_distribution(fcd_a, midpoints=grid)
    out["fcd_ks_coarse_bw0.3"] = obj.fcd_ks(midpoints=grid, bw_method=0.3)(ja, jb)
    out["fcd_wasserstein_coarse_bw0.3"] = obj.fcd_wasserstein(midpoints=grid, bw_method=0.3)(ja, jb)

    out["combined"] = obj.combine((2.0, obj.fc_corr(as_loss=True)), (0.5, obj.timeseries_rmse()))(
        ja, jb
    )

    out["bt_fc_a"] = metric.functional_connectivity(ja)
    out["bt_fc_b"] = metric.functional_connectivity(jb)
    out["bt_matrix_correlation"] = metric.matrix_correlation(out["bt_fc_a"], out["bt_fc_b"])
    out["bt_fcd_a_w30_s5"] = metric.functional_connectivity_dynamics(ja, 30, 5)
    out["bt_fcd_a_w50_s10"] = metric.functional_connectivity_dynamics(ja, 50, 10)
    # braintools reads a float dt as seconds; pass the Quantity so frequencies are Hz.
    freqs, psd = metric.power_spectral_density(ja, dt=dt_ms * u.ms)
    out["bt_psd_freqs"] = freqs
    out["bt_psd_a"] = psd
    freqs, psd = metric.power_spectral_density(ja, dt=dt_ms * u.ms, nperseg=100, noverlap=25)
    out["bt_psd_freqs_n100_o25"] = freqs
    out["bt_psd_a_n100_o25"] = psd

    out = {k: np.asarray(v) for k, v in out.items()}
    path = os.path.join(outdir, "objectives", "example_signal.npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path, **out)
    return path


if __name__ == "__main__":
    import sys

    print(main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/reference"))
