"""Semi-implicit (symplectic) Euler for models with position/velocity pairs."""

from __future__ import annotations

from typing import ClassVar

import diffrax as dfx

from ..solvers import ModelTerm, _find_model_term

__all__ = ["SymplecticEuler"]


class SymplecticEuler(dfx.AbstractSolver):
    r"""Semi-implicit Euler: velocities first, then positions with the new velocities.

    For each pair ``(position, velocity)`` in the model's ``symplectic_pairs``:

    $$v_{n+1} = v_n + \Delta t\, f_v(t_n, x_n, v_n), \qquad x_{n+1} = x_n + \Delta t\, f_x(t_n, x_n, v_{n+1}),$$

    every other state variable takes a forward-Euler step. This is the scheme of
    brainmass's ``HORNStep`` (coRNN-style). First order, fixed steps only.
    """

    term_structure: ClassVar = ModelTerm
    interpolation_cls: ClassVar = dfx.LocalLinearInterpolation

    def order(self, terms):
        return 1

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        term = _find_model_term(terms)
        pairs = getattr(term.model, "symplectic_pairs", ())
        if not pairs:
            raise ValueError(
                f"SymplecticEuler needs a model with position/velocity pairs (symplectic_pairs); "
                f"{type(term.model).__name__} declares none. Use ExponentialEuler or RK4."
            )
        dt = t1 - t0
        f = term.vf(t0, y0, args)
        positions = {x for x, _ in pairs}
        half = {k: y0[k] if k in positions else y0[k] + dt * f[k] for k in y0}
        f_pos = term.vf(t0, half, args)
        y1 = {k: y0[k] + dt * f_pos[k] if k in positions else half[k] for k in y0}
        return y1, None, dict(y0=y0, y1=y1), None, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)
