"""Reference numbers for ``brainmass_eqx.observation`` from brainmass 0.1.1.

Run this module INSIDE the brainmass 0.1.1 environment (it imports brainmass, brainstate
and brainunit, which the package itself never does)::

    cd /work/main && ~/.cache/bmx/venv-bm/bin/python -c \
        "import tools.reference_cases.observation as m; m.main('tests/data/reference')"

It writes, under ``<outdir>/observation/`` (float32, brainmass's default; every input is
deterministic):

* ``hrf_kernels.npz``: the four HRF kernels (defaults and one custom parameter set each)
  on a time grid in ms, evaluated with a Quantity grid and, for one kernel, with plain
  numbers (read as ms);
* ``hrf_bold.npz``: ``HRFBold`` on a fixed signal for valid/same/full x fft/direct, the
  other kernels, a non-zero history and non-default periods;
* ``temporal_average.npz``: ``TemporalAverage`` on plain and mV-Quantity signals;
* ``leadfield.npz``: ``LeadFieldModel`` / ``EEGLeadFieldModel`` / ``MEGLeadFieldModel``
  outputs (magnitude and unit string), ``compress_vertex_leadfield`` and
  ``build_fixed_orientation_weights``;
* ``leadfield_readout.npz``: ``LeadfieldReadout`` for every ``normalize`` x ``demean``
  and input ranks 1, 2, 3;
* ``balloon.npz``: ``BOLDSignal`` driven by a fixed signal from the textbook rest state
  (x is overwritten with 0 after brainmass's init at 1), dt = 1e-3 (brainmass's unitless
  dt is seconds), with the states after every 10th step and brainmass's ``bold()`` (its q/rho form).

Each file holds a JSON ``meta`` string with the settings.
"""

from __future__ import annotations

import json
import os

import numpy as np

_SEED = 20240612
#: balloon.npz keeps the states after steps 10, 20, ... (keeps the file small).
_RECORD_EVERY = 10


def _meta(**kw) -> np.ndarray:
    return np.array(json.dumps(kw, sort_keys=True))


def _np(x) -> np.ndarray:
    import brainunit as u

    return np.asarray(u.get_magnitude(x))


def _unit_str(x) -> str:
    import brainunit as u

    return str(u.get_unit(x)) if isinstance(x, u.Quantity) else ""


def _kernels(out_dir):
    import brainmass as bm
    import brainunit as u
    import jax.numpy as jnp

    t_ms = np.linspace(0.0, 40_000.0, 801)
    tq = jnp.asarray(t_ms) * u.ms
    specs = {
        "FirstOrderVolterra": (
            bm.FirstOrderVolterraHRFKernel,
            dict(tau_s=1.1, tau_f=0.5, scaling=0.5),
        ),
        "Gamma": (bm.GammaHRFKernel, dict(tau=1.3, n=4.0, a=0.2)),
        "DoubleExponential": (
            bm.DoubleExponentialHRFKernel,
            dict(tau_1=6.0, tau_2=8.0, f_1=0.05, f_2=0.1, amp_1=0.2, amp_2=0.05, a=0.3),
        ),
        "MixtureOfGammas": (bm.MixtureOfGammasHRFKernel, dict(a_1=5.0, a_2=12.0, l=0.9, c=0.3)),
    }
    arrays = {"t_ms": t_ms}
    for name, (cls, custom) in specs.items():
        arrays[f"{name}__default"] = _np(cls()(tq))
        arrays[f"{name}__custom"] = _np(cls(**custom)(tq))
    arrays["FirstOrderVolterra__plain_ms"] = _np(
        bm.FirstOrderVolterraHRFKernel()(jnp.asarray(t_ms))
    )
    arrays["meta"] = _meta(custom={k: v[1] for k, v in specs.items()}, brainmass=bm.__version__)
    np.savez_compressed(os.path.join(out_dir, "hrf_kernels.npz"), **arrays)


def _hrf_signal():
    dt_ms, n, r = 1.0, 12_000, 3
    t = np.arange(n) * dt_ms / 1000.0
    rng = np.random.default_rng(_SEED)
    freqs = np.array([0.05, 0.11, 0.23])
    sig = 1.0 + 0.5 * np.sin(2 * np.pi * freqs[None, :] * t[:, None] + np.arange(r)[None, :])
    sig = sig + 0.05 * rng.standard_normal((n, r))
    return sig.astype(np.float32), dt_ms


def _hrf_bold(out_dir):
    import brainmass as bm
    import brainunit as u
    import jax.numpy as jnp

    sig, dt_ms = _hrf_signal()
    x = jnp.asarray(sig)
    dt = dt_ms * u.ms
    arrays = {"signal": sig, "dt_ms": np.asarray(dt_ms)}
    for mode in ("valid", "same", "full"):
        for method in ("fft", "direct"):
            y = bm.HRFBold(convolution_mode=mode, method=method)(x, dt)
            arrays[f"bold__{mode}__{method}"] = _np(y)
    kernels = {
        "Gamma": bm.GammaHRFKernel(),
        "DoubleExponential": bm.DoubleExponentialHRFKernel(),
        "MixtureOfGammas": bm.MixtureOfGammasHRFKernel(),
    }
    for name, k in kernels.items():
        arrays[f"bold__kernel_{name}"] = _np(bm.HRFBold(kernel=k)(x, dt))
    k_hist = int(np.ceil(20_000.0 / 4.0))
    hist = (1.0 + 0.1 * np.random.default_rng(_SEED + 1).standard_normal((k_hist, 3))).astype(
        np.float32
    )
    arrays["history"] = hist
    arrays["bold__history"] = _np(bm.HRFBold(history=jnp.asarray(hist))(x, dt))
    custom = bm.HRFBold(
        k_1=4.0,
        V_0=0.03,
        period=500.0 * u.ms,
        downsample_period=2.0 * u.ms,
        kernel=bm.FirstOrderVolterraHRFKernel(duration=3.0 * u.second),
        convolution_mode="same",
    )
    arrays["bold__custom"] = _np(custom(x, dt))
    arrays["meta"] = _meta(
        custom=dict(
            k_1=4.0,
            V_0=0.03,
            period_ms=500.0,
            downsample_period_ms=2.0,
            kernel="FirstOrderVolterra",
            duration_ms=3000.0,
            convolution_mode="same",
        ),
        brainmass=bm.__version__,
    )
    np.savez_compressed(os.path.join(out_dir, "hrf_bold.npz"), **arrays)


def _temporal_average(out_dir):
    import brainmass as bm
    import brainunit as u
    import jax.numpy as jnp

    rng = np.random.default_rng(_SEED + 2)
    sig = rng.standard_normal((1003, 3)).astype(np.float32)
    ta = bm.TemporalAverage(period=4.0 * u.ms)
    y = ta(jnp.asarray(sig), 0.1 * u.ms)
    yq = ta(jnp.asarray(sig) * u.mV, 0.1 * u.ms)
    y2 = bm.TemporalAverage(period=1.0 * u.ms)(jnp.asarray(sig), 0.3 * u.ms)
    np.savez_compressed(
        os.path.join(out_dir, "temporal_average.npz"),
        signal=sig,
        avg_4ms_dt01=_np(y),
        avg_4ms_dt01_quantity=_np(yq),
        avg_4ms_dt01_quantity_unit=np.array(_unit_str(yq)),
        avg_1ms_dt03=_np(y2),
        meta=_meta(brainmass=bm.__version__),
    )


def _leadfield(out_dir):
    import brainmass as bm
    import brainunit as u
    import jax.numpy as jnp

    rng = np.random.default_rng(_SEED + 3)
    R, M, T, V = 4, 6, 10, 5
    L = rng.standard_normal((R, M)).astype(np.float32)
    S = rng.standard_normal((T, R)).astype(np.float32)
    Sb = rng.standard_normal((2, T, R)).astype(np.float32)
    normals = rng.standard_normal((V, 3))
    normals = (normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32)
    parcel = np.eye(R, dtype=np.float32)[rng.integers(0, R, V)]
    area = rng.uniform(0.5, 1.5, V).astype(np.float32)
    L_vertex = rng.standard_normal((M, 3 * V)).astype(np.float32)

    nam = u.nA * u.meter
    Lq = jnp.asarray(L) * (u.mV / nam)
    arrays = {
        "L": L,
        "S": S,
        "S_batched": Sb,
        "normals": normals,
        "parcel": parcel,
        "area": area,
        "L_vertex": L_vertex,
    }

    def record(key, y):
        arrays[key] = _np(y)
        arrays[key + "__unit"] = np.array(_unit_str(y))

    base = bm.LeadFieldModel((R,), (M,), Lq)
    record("base__plain", base.update(jnp.asarray(S)))
    record("base__mV", base.update(jnp.asarray(S) * u.mV))
    record("base__batched_mV", base.update(jnp.asarray(Sb) * u.mV))
    scaled = bm.LeadFieldModel((R,), (M,), Lq, scale=0.1 * nam / u.mV)
    record("scaled__mV", scaled.update(jnp.asarray(S) * u.mV))
    record("scaled__plain", scaled.update(jnp.asarray(S)))
    eeg = bm.EEGLeadFieldModel((R,), (M,), Lq)
    record("eeg__mV", eeg.update(jnp.asarray(S) * u.mV))
    record("eeg__plain", eeg.update(jnp.asarray(S)))
    meg = bm.MEGLeadFieldModel((R,), (M,), jnp.asarray(L) * (u.tesla / nam))
    record("meg__mV", meg.update(jnp.asarray(S) * u.mV))
    record("meg__plain", meg.update(jnp.asarray(S)))

    W = bm.LeadFieldModel.build_fixed_orientation_weights(
        jnp.asarray(normals), jnp.asarray(parcel), jnp.asarray(area)
    )
    W1 = bm.LeadFieldModel.build_fixed_orientation_weights(
        jnp.asarray(normals), jnp.asarray(parcel)
    )
    arrays["W_area"] = _np(W)
    arrays["W_ones"] = _np(W1)
    arrays["compressed"] = _np(
        bm.LeadFieldModel.compress_vertex_leadfield(jnp.asarray(L_vertex), W)
    )
    arrays["meta"] = _meta(
        brainmass=bm.__version__, L_unit="mV/(nA m) (MEG: T/(nA m))", scaled_scale="0.1 nA m / mV"
    )
    np.savez_compressed(os.path.join(out_dir, "leadfield.npz"), **arrays)


def _readout(out_dir):
    import brainmass as bm
    import jax.numpy as jnp
    from brainstate.nn import Param

    rng = np.random.default_rng(_SEED + 4)
    lm = rng.standard_normal((5, 3)).astype(np.float32)
    xs = {
        "x1": rng.standard_normal((3,)).astype(np.float32),
        "x2": rng.standard_normal((7, 3)).astype(np.float32),
        "x3": rng.standard_normal((2, 7, 3)).astype(np.float32),
    }
    y0, cy0 = 0.3, 1.7
    arrays = {"lm": lm, "y0": np.asarray(y0), "cy0": np.asarray(cy0), **xs}
    for norm in (True, "l1", "l2", False):
        for demean in (True, False):
            ro = bm.LeadfieldReadout(
                jnp.asarray(lm), Param.init(y0), Param.init(cy0), normalize=norm, demean=demean
            )
            tag = f"{norm}__{demean}"
            arrays[f"lm_hat__{tag}"] = _np(ro.lm.value())
            for k, x in xs.items():
                arrays[f"y__{tag}__{k}"] = _np(ro.update(jnp.asarray(x)))
    arrays["meta"] = _meta(brainmass=bm.__version__)
    np.savez_compressed(os.path.join(out_dir, "leadfield_readout.npz"), **arrays)


def _balloon(out_dir):
    import brainmass as bm
    import brainstate
    import jax.numpy as jnp

    dt_s, n, r = 1e-3, 4000, 3
    t = np.arange(n) * dt_s
    z = (
        0.3
        * (np.sin(2 * np.pi * 0.4 * t)[:, None] + 1.0)
        * np.array([1.0, 0.5, 2.0])[None, :]
        * (t[:, None] < 2.0)
    ).astype(np.float32)
    params = dict(gamma=0.45, k=0.6, alpha=0.3, tau=1.1, rho=0.4, V0=0.03)
    models = {"default": bm.BOLDSignal(r), "custom": bm.BOLDSignal(r, **params)}
    arrays = {"z": z, "dt_s": np.asarray(dt_s), "record_every": np.asarray(_RECORD_EVERY)}
    with brainstate.environ.context(dt=dt_s):
        for tag, mod in models.items():
            brainstate.nn.init_all_states(mod)
            mod.x.value = jnp.zeros_like(mod.x.value)

            def body(zi, mod=mod):
                mod.update(zi)
                return mod.x.value, mod.f.value, mod.v.value, mod.q.value, mod.bold()

            x, f, v, q, b = brainstate.transform.for_loop(body, jnp.asarray(z))
            for name, val in zip(
                ("s", "f", "v", "q", "bold_brainmass"), (x, f, v, q, b), strict=True
            ):
                arrays[f"{tag}__{name}"] = _np(val)[_RECORD_EVERY - 1 :: _RECORD_EVERY]
    arrays["meta"] = _meta(
        brainmass=bm.__version__,
        custom=params,
        dt_s=dt_s,
        note="x set to 0 after init (brainmass inits all states at 1)",
    )
    np.savez_compressed(os.path.join(out_dir, "balloon.npz"), **arrays)


def main(outdir):
    """Write the ``<outdir>/observation/*.npz`` reference files; return the directory."""
    out_dir = os.path.join(outdir, "observation")
    os.makedirs(out_dir, exist_ok=True)
    for fn in (_kernels, _hrf_bold, _temporal_average, _leadfield, _readout, _balloon):
        print(f"[observation] {fn.__name__.lstrip('_')}", flush=True)
        fn(out_dir)
    return out_dir
