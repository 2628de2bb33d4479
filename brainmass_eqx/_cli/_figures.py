"""The command line's figures, assembled from `brainmass_eqx.viz` panels."""

from __future__ import annotations

import numpy as np

from .. import viz

# Enough regions to see the dynamics without a wall of lines.
_MAX_LINES = 6


def _figure(rows: int, cols: int, title: str):
    plt = viz._pyplot()
    fig, axs = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    fig.suptitle(title)
    return fig, axs


def _few(n: int) -> list[int]:
    return list(range(min(n, _MAX_LINES)))


def _spectrum_segment(traj) -> int:
    """Welch segments of half a second where the run allows: the default ``time // 8``
    gives 1 s of samples 8 Hz bins, too coarse to show an alpha peak. At least 16 samples:
    BOLD sampled every TR has too few for either rule."""
    n = len(traj.ts)
    step_ms = float(traj.ts[1] - traj.ts[0]) if n > 1 else 1.0
    return int(min(n, max(n // 8, round(500.0 / step_ms), 16)))


def simulation_figure(traj, var: str, conn, *, title: str):
    """Structural connectivity, time series, FC and power spectrum of a network run."""
    fig, axs = _figure(2, 2, title)
    n = conn.n_regions
    labels = list(conn.labels)
    viz.plot_connectivity(conn, ax=axs[0, 0], log=n > 20)
    axs[0, 0].set_title("structural connectivity")
    viz.plot_timeseries(traj, var=var, regions=_few(n), labels=labels, ax=axs[0, 1])
    axs[0, 1].set_title(f"{var}, regions 0-{len(_few(n)) - 1}")
    viz.plot_functional_connectivity(traj, var=var, labels=labels, ax=axs[1, 0])
    axs[1, 0].set_title("functional connectivity")
    viz.plot_power_spectrum(traj, var=var, average=True, nperseg=_spectrum_segment(traj), ax=axs[1, 1])
    axs[1, 1].set_title("power spectrum (mean over regions)")
    fig.tight_layout()
    return fig


def _fc_pair(ax_target, ax_fitted, target_fc, fitted_fc, labels, target_title: str, fitted_title: str):
    """Target and fitted FC side by side, on one colour range set by the off-diagonal values
    (the unit diagonal would wash them out). ``fitted_title`` may hold ``{r}``, their
    correlation."""
    from ..metrics import matrix_correlation

    target_fc, fitted_fc = np.asarray(target_fc), np.asarray(fitted_fc)
    off = ~np.eye(target_fc.shape[0], dtype=bool)
    lim = float(max(np.abs(target_fc[off]).max(), np.abs(fitted_fc[off]).max(), 1e-3))
    viz.plot_functional_connectivity(target_fc, is_matrix=True, labels=labels, ax=ax_target, vmin=-lim, vmax=lim)
    ax_target.set_title(target_title)
    r = float(matrix_correlation(fitted_fc, target_fc))
    viz.plot_functional_connectivity(fitted_fc, is_matrix=True, labels=labels, ax=ax_fitted, vmin=-lim, vmax=lim)
    ax_fitted.set_title(fitted_title.format(r=r))


# What `fit --loss` names, as an axis label.
_LOSS_LABELS = {"rmse": "loss: RMSE of the FC upper triangles", "corr": "loss: 1 - corr(FC model, FC target)"}


def fit_figure(result, target_fc, fitted_fc, conn, *, loss: str = "rmse", fitted: dict[str, str] | None = None):
    """Target FC, fitted FC and the loss history; the title gives the ``fitted`` values
    (``{name: text}``), the loss axis the ``loss`` (a ``fit --loss`` name)."""
    values = ", ".join(f"{name} = {text}" for name, text in (fitted or {}).items())
    fig, axs = _figure(1, 3, "fit to the target FC" + (f": {values}" if values else ""))
    _fc_pair(axs[0, 0], axs[0, 1], target_fc, fitted_fc, list(conn.labels), "target FC", "fitted model FC (r = {r:.2f})")
    viz.plot_fit_history(result, ax=axs[0, 2])
    axs[0, 2].set_ylabel(_LOSS_LABELS.get(loss, "loss"))
    axs[0, 2].set_title(f"loss ({result.backend})")
    fig.tight_layout()
    return fig


def demo_figure(*, conn, traj, var, target_fc, result, fitted_fc, k_true, k_fit, landscape=None):
    """The demo's six panels: SC, dynamics, spectrum, target FC, fitted FC, loss."""
    n = conn.n_regions
    labels = list(conn.labels)
    fig, axs = _figure(2, 3, f"brainmass_eqx demo: Hopf network on {n} regions, coupling recovered by fitting FC")
    viz.plot_connectivity(conn, ax=axs[0, 0], log=n > 20)
    axs[0, 0].set_title("structural connectivity")
    regions = _few(n)[:3]
    viz.plot_timeseries(traj, var=var, regions=regions, labels=labels, time_unit="s", ax=axs[0, 1])
    # Half a second: enough to see the noisy 10 Hz rhythm, not a wall of cycles.
    t0 = float(traj.ts[0]) / 1000.0
    axs[0, 1].set_xlim(t0, t0 + 0.5)
    axs[0, 1].set_title(f"simulated activity, regions {', '.join(labels[r] for r in regions)} (k = {k_true:g})")
    viz.plot_power_spectrum(traj, var=var, average=True, nperseg=_spectrum_segment(traj), ax=axs[0, 2])
    axs[0, 2].set_title("power spectrum (mean over regions)")
    _fc_pair(axs[1, 0], axs[1, 1], target_fc, fitted_fc, labels, f"target FC (k = {k_true:g})", f"fitted FC (k = {k_fit:.3g}, r = {{r:.2f}})")
    ax = axs[1, 2]
    if landscape is not None:
        ks, losses = landscape
        ax.plot(ks, losses, color="0.5", linewidth=1.2, label="loss landscape")
        ax.axvline(k_true, color="tab:green", linestyle="--", label=f"true k = {k_true:g}")
        ax.axvline(k_fit, color="tab:red", linestyle=":", label=f"fitted k = {k_fit:.3g}")
        ax.plot(k_fit, result.best_loss, "*", color="tab:red", markersize=12)
        ax.set_xlabel("global coupling k")
        ax.set_ylabel("loss")
        ax.legend(fontsize="small")
        ax.set_title("loss against k")
    else:
        viz.plot_fit_history(result, ax=ax)
        ax.set_title(f"fit history ({result.backend})")
    fig.tight_layout()
    return fig
