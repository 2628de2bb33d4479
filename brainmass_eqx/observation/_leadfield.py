"""EEG / MEG forward models: lead fields from regions (dipoles) to sensors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import is_traced, series_of
from .._precision import matmul
from .._text import Readable
from .._units import AnyQuantity, UnitError, quantity, unxt_module
from ..datasets._types import Signal
from ._temporal import _is_quantity, _magnitude, _param

if TYPE_CHECKING:
    from unxt import AbstractUnit

__all__ = ["LeadFieldModel", "EEGLeadField", "MEGLeadField", "LeadfieldReadout"]


def _unit(value, name: str):
    # Lead-field models keep unit objects (they compose: L is in sensor / dipole unit), so
    # building one imports unxt.
    try:
        return unxt_module().unit(value)
    except Exception as err:
        raise ValueError(
            f"`{name}` must be a unit (e.g. 'mV', 'T', 'nA m'), got {value!r}."
        ) from err


def _matrix(value, unit, name: str) -> Array:
    """A 2-D float matrix; a Quantity is converted to `unit`, plain numbers are in it."""
    arr = _param(value, name, unit, str(unit))
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D matrix, got shape {arr.shape}.")
    return arr


def _init_leadfield(self, L, sensor_unit, dipole_unit, scale, noise_cov) -> None:
    """Shared constructor body of the lead-field models (sets the fields of `self`)."""
    self.sensor_unit = _unit(sensor_unit, "sensor_unit")
    self.dipole_unit = _unit(dipole_unit, "dipole_unit")
    self.L = _matrix(L, self.sensor_unit / self.dipole_unit, "L")
    if scale is None:
        # One dipole unit per mV: a neural-mass potential in mV maps one-to-one.
        self.input_unit = _unit("mV", "input unit")
        self.scale = _param(1.0, "scale")
    elif _is_quantity(scale):
        self.input_unit = self.dipole_unit / scale.unit
        self.scale = _param(scale.value, "scale")
    else:
        self.input_unit = self.dipole_unit
        self.scale = _param(scale, "scale")
    if noise_cov is None:
        self.noise_chol = None
    else:
        cov = _matrix(noise_cov, self.sensor_unit**2, "noise_cov")
        m = self.L.shape[1]
        if cov.shape != (m, m):
            raise ValueError(
                f"`noise_cov` must be ({m}, {m}) (sensors x sensors, as `L` has {m} "
                f"sensors), got {cov.shape}."
            )
        # Concrete where `cov` is: under jax.jit the factor of a constant was traced, and a
        # covariance that is not positive definite (a NaN factor) was not refused.
        with jax.ensure_compile_time_eval():
            chol = jnp.linalg.cholesky(cov)
        if not is_traced(chol):
            c = np.asarray(cov)
            if not np.allclose(c, c.T, rtol=1e-6, atol=0) or not np.all(np.isfinite(chol)):
                raise ValueError(
                    "`noise_cov` must be a symmetric positive definite covariance matrix."
                )
        self.noise_chol = chol


class LeadFieldModel(Readable):
    r"""Linear forward model from region signals to sensors, with optional sensor noise.

    .. math:: Y = (c\, S)\, L + E, \qquad E_t \sim \mathcal{N}(0, \Sigma)\ \text{i.i.d.}

    S (..., R) is the region signal, c the `scale` mapping it to a dipole moment, L (R, M)
    the lead field in ``sensor_unit / dipole_unit`` and Y (..., M) the sensor signal in
    `sensor_unit`. Noise is drawn as ``z @ chol(Σ).T`` with an explicit key.

    **Arguments:**

    - `L`: lead field (R, M); a Quantity is converted to ``sensor_unit/dipole_unit``,
      plain numbers are read in it.
    - `sensor_unit`: unit of the sensors (default 'mV'; 'T' for MEG).
    - `dipole_unit`: unit of the dipole moment (default 'nA m').
    - `scale`: observable -> dipole mapping. None (default): 1 dipole unit per mV (a
      potential in mV maps one-to-one); a plain number: the input is already a dipole
      moment in `dipole_unit`, multiplied by it; a Quantity such as
      ``Quantity(0.1, 'nA m / mV')``: the input is read in ``dipole_unit / scale.unit``.
    - `noise_cov`: optional sensor noise covariance (M, M), in ``sensor_unit**2``
      (Quantity converted; plain numbers read in it); must be positive definite.

    **Call** ``(S, key=None, *, return_quantity=None)``: `S` of shape (..., R) (e.g.
    (T, R) or (B, T, R)), a Quantity (converted to the input unit) or plain numbers (read
    in it). `key` is required when `noise_cov` is set. The output (..., M) is a Quantity
    in `sensor_unit` when `S` is a Quantity or `return_quantity=True`, otherwise plain
    numbers in `sensor_unit`.
    """

    L: Array
    scale: Array
    noise_chol: Array | None
    sensor_unit: AbstractUnit = eqx.field(static=True)
    dipole_unit: AbstractUnit = eqx.field(static=True)
    input_unit: AbstractUnit = eqx.field(static=True)

    def __init__(self, L, sensor_unit="mV", dipole_unit="nA m", scale=None, noise_cov=None):
        _init_leadfield(self, L, sensor_unit, dipole_unit, scale, noise_cov)

    @property
    def R(self) -> int:
        """Number of regions (rows of `L`)."""
        return self.L.shape[0]

    @property
    def M(self) -> int:
        """Number of sensors (columns of `L`)."""
        return self.L.shape[1]

    @property
    def noise_cov(self) -> Array | None:
        """The sensor noise covariance, in ``sensor_unit**2``."""
        return None if self.noise_chol is None else matmul(self.noise_chol, self.noise_chol.T)

    def __call__(
        self,
        S: Float[ArrayLike, "... R"] | AnyQuantity | Signal,
        key: PRNGKeyArray | None = None,
        *,
        return_quantity: bool | None = None,
    ):
        S = series_of(S, "S")
        is_q = _is_quantity(S)
        if is_q:
            try:
                x = jnp.asarray(unxt_module().ustrip(self.input_unit, S))
            except Exception as err:
                raise UnitError(
                    f"`S` has unit {S.unit}, which cannot be converted to the input unit "
                    f"{self.input_unit} set by `scale`."
                ) from err
        else:
            x = jnp.asarray(S)
        if x.ndim < 1 or x.shape[-1] != self.R:
            flipped = x.ndim >= 1 and x.shape[-1] == self.M
            raise ValueError(
                f"`S` has {x.shape[-1] if x.ndim else 0} regions on its last axis (shape "
                f"{x.shape}) but the lead field `L` has {self.R} rows (regions); pass "
                f"signals of shape (..., {self.R})."
                + (" `L` is (regions, sensors); if yours is (sensors, regions), pass L.T." if flipped else "")
            )
        y = matmul(self.scale * x, self.L)
        if self.noise_chol is not None:
            if key is None:
                raise ValueError(
                    "`key` is required when the model has `noise_cov` (sensor noise); pass "
                    "a jax.random key."
                )
            y = y + matmul(jax.random.normal(key, y.shape, y.dtype), self.noise_chol.T)
        if return_quantity is None:
            return_quantity = is_q
        if return_quantity:
            return quantity(y, self.sensor_unit)
        return y

    @staticmethod
    def compress_vertex_leadfield(L_vertex, W):
        r"""Aggregate a vertex lead field to regions: :math:`L_\text{vertex} W`.

        `L_vertex` (M, 3V) holds the x/y/z dipole components per vertex, `W` (3V, R) the
        vertex-to-region weights (see `build_fixed_orientation_weights`). The result is
        (M, R), as in brainmass; pass its transpose as `L` (R, M). Quantities carry their
        units through the product (the unit of the result is the product of the units given).
        """
        ncols = jnp.shape(L_vertex)[-1]
        if jnp.ndim(W) != 2 or jnp.shape(W)[0] != ncols:
            raise ValueError(
                f"`W` must be (3V, R) with 3V = {ncols} (the columns of `L_vertex`), got "
                f"shape {jnp.shape(W)}."
            )
        product = matmul(_magnitude(L_vertex), _magnitude(W))
        units = [x.unit for x in (L_vertex, W) if _is_quantity(x)]
        if not units:
            return product
        return quantity(product, units[0] if len(units) == 1 else units[0] * units[1])

    @staticmethod
    def build_fixed_orientation_weights(
        normals: Float[ArrayLike, "V 3"],
        parcel: Float[ArrayLike, "V R"],
        area_weights: Float[ArrayLike, " V"] | None = None,
    ) -> Float[Array, "3*V R"]:
        """Fixed-orientation vertex -> region weights, shape (3V, R).

        Rows ``k*V + v`` (k = x, y, z) hold ``area[v] * parcel[v, r] * normals[v, k]``
        (brainmass's block order: all x rows, then y, then z).

        - `normals`: unit surface normals (V, 3).
        - `parcel`: vertex-to-region assignment (V, R), one-hot or soft.
        - `area_weights`: optional vertex areas (V,); ones by default.
        """
        normals = jnp.asarray(normals)
        parcel = jnp.asarray(parcel)
        if normals.ndim != 2 or normals.shape[1] != 3:
            raise ValueError(f"`normals` must be (V, 3), got shape {normals.shape}.")
        v = normals.shape[0]
        if parcel.ndim != 2 or parcel.shape[0] != v:
            raise ValueError(f"`parcel` must be (V, R) with V = {v}, got shape {parcel.shape}.")
        if area_weights is None:
            area_weights = jnp.ones((v,), normals.dtype)
        area_weights = jnp.asarray(area_weights)
        if area_weights.shape != (v,):
            raise ValueError(f"`area_weights` must be ({v},), got shape {area_weights.shape}.")
        ar = area_weights[:, None] * parcel
        return jnp.concatenate([ar * normals[:, k : k + 1] for k in range(3)], axis=0)


class EEGLeadField(LeadFieldModel):
    """EEG lead field: dipoles in nA m, an mV observable mapped one-to-one, sensors in mV.

    Arguments as `LeadFieldModel` with `dipole_unit` and `scale` fixed
    (``scale = 1 nA m / mV``); `sensor_unit` defaults to 'mV'.
    """

    def __init__(self, L, sensor_unit="mV", noise_cov=None):
        _init_leadfield(self, L, sensor_unit, "nA m", quantity(1.0, "nA m / mV"), noise_cov)


class MEGLeadField(LeadFieldModel):
    """MEG lead field: dipoles in nA m, an mV observable mapped one-to-one, sensors in T.

    Arguments as `LeadFieldModel` with `dipole_unit` and `scale` fixed
    (``scale = 1 nA m / mV``); `sensor_unit` defaults to 'T'. (brainmass's scale is
    ``nA m / T``, which makes an mV input come out in mV rather than tesla.)
    """

    def __init__(self, L, sensor_unit="T", noise_cov=None):
        _init_leadfield(self, L, sensor_unit, "nA m", quantity(1.0, "nA m / mV"), noise_cov)


_NORMS = {True: "l1", "l1": "l1", "l2": "l2", False: None, None: None}


class LeadfieldReadout(Readable):
    r"""Trainable lead-field EEG readout (brainmass's `LeadfieldReadout`).

    .. math:: y = c_{y0}\, (\hat L x) - y_0,

    where :math:`\hat L` is `lm` after optional row normalisation (``True``/``'l1'``:
    divide each row by its L1 norm; ``'l2'``: by its L2 norm; ``False``/``None``: none)
    and, if `demean`, subtraction of each column's mean over rows (sensors).

    **Arguments:**

    - `lm`: raw lead field (n_sensors, n_regions); a trainable leaf.
    - `y0`: output offset (float or array broadcastable to the sensors); trainable.
    - `cy0`: output gain (float); trainable.
    - `normalize`: ``True`` (= ``'l1'``), ``'l1'``, ``'l2'``, ``False`` or ``None``.
    - `demean`: remove the column mean of the normalised matrix (default True).

    **Call** ``(x)``: `x` (..., n_regions) -> (..., n_sensors).
    """

    lm: Array
    y0: Array
    cy0: Array
    normalize: Literal["l1", "l2"] | None = eqx.field(static=True)
    demean: bool = eqx.field(static=True)

    def __init__(self, lm, y0, cy0, normalize=True, demean=True):
        if isinstance(normalize, str | bool) or normalize is None:
            resolved = _NORMS.get(normalize, "bad")
        else:
            resolved = "bad"
        if resolved == "bad":
            raise ValueError(
                f"`normalize` must be one of True, False, None, 'l1', 'l2'; got {normalize!r}."
            )
        self.lm = _matrix(_magnitude(lm), None, "lm")
        self.y0 = _param(y0, "y0")
        self.cy0 = _param(cy0, "cy0")
        self.normalize = resolved
        self.demean = bool(demean)

    def leadfield(self) -> Float[Array, "n_sensors n_regions"]:
        """The effective (normalised, demeaned) lead field :math:`\\hat L`."""
        lm = self.lm
        if self.normalize == "l1":
            lm = lm / jnp.sum(jnp.abs(lm), axis=1, keepdims=True)
        elif self.normalize == "l2":
            lm = lm / jnp.sqrt(jnp.sum(lm**2, axis=1, keepdims=True))
        if self.demean:
            lm = lm - jnp.mean(lm, axis=0, keepdims=True)
        return lm

    def __call__(self, x: Float[ArrayLike, "... n_regions"]) -> Float[Array, "... n_sensors"]:
        x = jnp.asarray(series_of(x, "x"))
        n = self.lm.shape[1]
        if x.ndim < 1 or x.shape[-1] != n:
            flipped = x.ndim >= 1 and x.shape[-1] == self.lm.shape[0]
            raise ValueError(
                f"`x` must have {n} regions on its last axis (the columns of `lm`), got "
                f"shape {x.shape}."
                + (" `lm` is (sensors, regions); if yours is (regions, sensors), pass lm.T." if flipped else "")
            )
        return self.cy0 * matmul(x, self.leadfield().T) - self.y0
