"""``brainunit.math`` / ``brainunit.fft`` on the compat facade follow brainunit's unit rules.

The expected values and units are brainunit 0.1.1's (saiunit) on the same inputs. Also:
``np.asarray`` of a dimensionful Quantity is refused (as brainunit does) while matplotlib still
plots quantities, and large operands are abbreviated in unit-mismatch messages.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat import brainunit as u

Q = jnp.array([1.0, 2.0, 3.0]) * u.ms
A = jnp.array([[1.0, 2.0], [3.0, 5.0]])


def _is(q, values, unit):
    assert isinstance(q, u.Quantity), f"expected a Quantity in {unit}, got {q!r}"
    assert u.get_unit(q) == unit, f"unit {u.get_unit(q)} != {unit}"
    np.testing.assert_allclose(np.asarray(q.mantissa), values, rtol=1e-6)


# -- unit rules, against brainunit ------------------------------------------------------------


@pytest.mark.parametrize(
    "call, values, unit",
    [
        (lambda: u.math.linspace(0 * u.ms, 10 * u.ms, 5), [0.0, 2.5, 5.0, 7.5, 10.0], u.ms),
        (lambda: u.math.linspace(0 * u.ms, 1 * u.second, 3), [0.0, 500.0, 1000.0], u.ms),
        (lambda: u.math.arange(0 * u.ms, 5 * u.ms, 1 * u.ms), [0, 1, 2, 3, 4], u.ms),
        (lambda: u.math.arange(5 * u.ms), [0, 1, 2, 3, 4], u.ms),
        (lambda: u.math.clip(Q, 1.5 * u.ms, 2.5 * u.ms), [1.5, 2.0, 2.5], u.ms),
        (lambda: u.math.clip(Q, 0.0015 * u.second, 2.5 * u.ms), [1.5, 2.0, 2.5], u.ms),
        (lambda: u.math.diff(Q), [1.0, 1.0], u.ms),
        (lambda: u.math.diff(Q, prepend=0 * u.ms), [1.0, 1.0, 1.0], u.ms),
        (lambda: u.math.var(Q), 2 / 3, u.ms**2),
        (lambda: u.math.var(jnp.ones((2, 3)) * u.mV, axis=0), [0.0, 0.0, 0.0], u.mV**2),
        (lambda: u.math.full((2,), 3 * u.ms), [3, 3], u.ms),
        (lambda: u.math.full_like(Q, 2 * u.ms), [2.0, 2.0, 2.0], u.ms),
        (lambda: u.math.full_like(Q, 0.002 * u.second), [2.0, 2.0, 2.0], u.ms),
        (lambda: u.math.interp(1.5 * u.ms, Q, Q), 1.5, u.ms),
        (lambda: u.math.interp(0.0015 * u.second, Q, Q / u.ms * u.mV), 1.5, u.mV),
        (lambda: u.math.dot(Q, Q), 14.0, u.ms**2),
        (lambda: u.math.dot(jnp.ones(3), Q), 6.0, u.ms),
        (lambda: u.math.matmul(jnp.ones((3, 3)), Q), [6.0, 6.0, 6.0], u.ms),
        (lambda: u.math.outer(Q, Q), np.outer([1, 2, 3], [1, 2, 3]), u.ms**2),
        (lambda: u.math.einsum("i,i->", Q, Q), 14.0, u.ms**2),
        (lambda: u.math.einsum("i,i,i->", Q, Q, jnp.ones(3) * u.mV), 14.0, u.ms**2 * u.mV),
        (lambda: u.math.percentile(Q, 50), 2.0, u.ms),
        (lambda: u.math.percentile(jnp.ones((2, 3)) * u.mV, jnp.array([25.0, 75.0]), axis=1), np.ones((2, 2)), u.mV),
        (lambda: u.math.round(Q * 1.234, 1), [1.2, 2.5, 3.7], u.ms),
        (lambda: u.math.add(Q, 1 * u.second), [1001.0, 1002.0, 1003.0], u.ms),
        (lambda: u.math.trapezoid(Q, Q), 4.0, u.ms**2),
        (lambda: u.math.maximum(Q, 2 * u.ms), [2.0, 2.0, 3.0], u.ms),
        (lambda: u.math.where(Q > 2 * u.ms, Q, 0 * u.ms), [0.0, 0.0, 3.0], u.ms),
        (lambda: u.math.concatenate([Q, Q.to(u.second)]), [1, 2, 3, 1, 2, 3], u.ms),
        (lambda: u.math.sqrt(Q**2), [1.0, 2.0, 3.0], u.ms),
        (lambda: u.math.histogram(Q, bins=2)[1], [1.0, 2.0, 3.0], u.ms),
        (lambda: u.math.unique(jnp.array([3.0, 1.0, 3.0]) * u.nA), [1.0, 3.0], u.nA),
        (lambda: u.math.unique(jnp.array([3.0, 1.0, 3.0]) * u.nA, return_counts=True)[0], [1.0, 3.0], u.nA),
        (lambda: u.math.asarray([1 * u.ms, 2 * u.ms]), [1.0, 2.0], u.ms),
        (lambda: u.fft.rfft(Q), [6.0, -1.5 + 0.8660254j], u.ms * u.second),
        (lambda: u.fft.irfft(u.fft.rfft(jnp.ones(4) * u.mV)), [1.0, 1.0, 1.0, 1.0], u.mV),
        (lambda: u.fft.rfftfreq(4, 0.1 * u.ms), [0.0, 2.5, 5.0], u.kHz),
        (lambda: u.fft.rfftfreq(4, 0.1 * u.second), [0.0, 2.5, 5.0], u.Hz),
        (lambda: u.fft.fftshift(Q), [3.0, 1.0, 2.0], u.ms),
        (lambda: u.math.fft.rfft(Q), [6.0, -1.5 + 0.8660254j], u.ms * u.second),
    ],
)
def test_unit_rules_match_brainunit(call, values, unit):
    _is(call(), values, unit)


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: u.math.allclose(Q, Q), True),
        (lambda: u.math.allclose(Q, Q.to(u.second)), True),  # compared after conversion
        (lambda: u.math.allclose(Q, Q + 0.001 * u.ms, atol=0.01 * u.ms), True),
        (lambda: u.math.isclose(Q, Q * 1.001, rtol=0.01), [True, True, True]),
        (lambda: u.math.isclose(Q, Q + 1 * u.ms), [False, False, False]),
        (lambda: u.math.equal(Q, Q.to(u.second)), [True, True, True]),
        (lambda: u.math.argmax(Q), 2),
        (lambda: u.math.argsort(-Q), [2, 1, 0]),
        (lambda: u.math.searchsorted(Q, 1.5 * u.ms), 1),
        (lambda: u.math.sign(-Q), [-1.0, -1.0, -1.0]),
        (lambda: u.math.divide(Q, 2 * u.ms), [0.5, 1.0, 1.5]),
        (lambda: u.math.histogram(Q, bins=2)[0], [1.0, 2.0]),
        # brainunit 0.1: unique's indices, inverse and counts are plain (before: TypeError, the
        # facade's unique refused every Quantity)
        (lambda: u.math.unique(jnp.array([3.0, 1.0, 3.0]) * u.nA, return_counts=True)[1], [1, 2]),
        (lambda: u.math.unique(jnp.array([3.0, 1.0, 3.0]) * u.nA, return_index=True, return_inverse=True)[2],
         [1, 0, 1]),
        (lambda: u.math.exp(Q / u.ms), np.exp([1.0, 2.0, 3.0])),
    ],
)
def test_unitless_results_are_plain_arrays(call, expected):
    out = call()
    assert not isinstance(out, u.Quantity), out
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)


def test_unit_display_is_brainunits():
    assert str(u.math.var(Q)) == "0.6666667 ms^2"
    assert str(u.math.einsum("i,i,i->", Q, Q, jnp.ones(3) * u.mV)).endswith("mV * ms^2")
    assert str(1 * u.mV / u.ms**2) == "1 mV / ms^2"
    assert str(u.get_unit(u.fft.rfft(Q))) == "ms * s"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: u.math.clip(Q, 1 * u.mV, 2.5 * u.ms), r"clip: min is 1 mV but arr is \[1. 2. 3.\] ms"),
        (lambda: u.math.clip(Q, 1.5, 2.5), r"clip: min is a plain number \(1.5\).*`min \* u.ms`"),
        (lambda: u.math.allclose(Q, Q / u.ms * u.mV), r"allclose: b is .* mV but a is .* ms"),
        (lambda: u.math.allclose(Q, jnp.array([1.0, 2.0, 3.0])), r"allclose: b is a plain number"),
        (lambda: u.math.allclose(Q, Q, atol=0.01), r"allclose: atol is a plain number"),
        (lambda: u.math.linspace(0 * u.ms, 10 * u.mV, 3), r"linspace: stop is 10 mV but start is 0 ms"),
        (lambda: u.math.interp(1.5, Q, Q), r"interp: x is a plain number"),
        (lambda: u.math.exp(Q), r"exp requires a dimensionless argument, got unit ms"),
        (lambda: u.fft.rfftfreq(4, 0.1 * u.mV), r"rfftfreq: the sample spacing d must be a time"),
    ],
)
def test_unit_mismatches_name_the_function_and_arguments(call, match):
    with pytest.raises(u.UnitMismatchError, match=match):
        call()


@pytest.mark.parametrize(
    "name, call",
    [
        ("cumprod", lambda: u.math.cumprod(Q)),
        ("gradient", lambda: u.math.gradient(Q)),
        ("meshgrid", lambda: u.math.meshgrid(Q, Q)),
        ("fft.hfft", lambda: u.fft.hfft(Q)),
    ],
)
def test_functions_without_a_unit_rule_refuse_quantities_by_name(name, call):
    # JAX's own message was "cumprod requires ndarray or scalar arguments, got <class ...Quantity>".
    with pytest.raises(TypeError, match=rf"brainunit.math.{name}: an argument is a Quantity .*ms.*does not support "
                       r"Quantities.*q.to_decimal\(u.ms\)"):  # fmt: skip
        call()


def test_quantity_argument_a_rule_does_not_convert_is_named():
    with pytest.raises(TypeError, match=r"percentile: argument 'q' is a Quantity"):
        u.math.percentile(Q, 50 * u.ms)


def test_plain_arrays_are_unchanged():
    x = jnp.array([3.0, 1.0, 2.0])
    for name, args, kwargs in [
        ("linspace", (0.0, 1.0, 5), {}),
        ("arange", (0, 5), {}),
        ("clip", (x, 1.5, 2.5), {}),
        ("diff", (x,), {"prepend": 0.0}),
        ("var", (A,), {"axis": 0}),
        ("full", ((2,), 3.0), {}),
        ("full_like", (x, 2.0), {}),
        ("allclose", (x, x), {}),
        ("isclose", (x, x + 1e-9), {}),
        ("interp", (1.5, jnp.array([1.0, 2.0]), jnp.array([10.0, 20.0])), {}),
        ("dot", (x, x), {}),
        ("matmul", (A, A), {}),
        ("outer", (x, x), {}),
        ("percentile", (x, 50), {}),
        ("round", (x * 1.234, 1), {}),
        ("einsum", ("ij,jk->ik", A, A), {}),
        ("argmax", (x,), {}),
        ("maximum", (x, 2.0), {}),
        ("where", (x > 1.5, x, 0.0), {}),
        ("cumprod", (x,), {}),  # no unit rule: jax.numpy's own function
        ("histogram", (x,), {"bins": 2}),
    ]:
        got, want = getattr(u.math, name)(*args, **kwargs), getattr(jnp, name)(*args, **kwargs)
        for g, w in zip(got, want) if isinstance(want, tuple) else [(got, want)]:
            assert type(g) is type(w), name
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=name)
    assert int(u.math.add.reduce(jnp.arange(4))) == 6  # ufunc methods survive the wrapper
    assert u.math.float32 is jnp.float32
    with pytest.raises(TypeError):  # JAX's errors for plain misuse are JAX's
        u.math.cumprod("abc")


def test_dimensionless_quantities_are_plain_numbers():
    np.testing.assert_allclose(np.asarray(u.math.cumprod(Q / (1 * u.ms))), [1.0, 2.0, 6.0])
    np.testing.assert_allclose(np.asarray(u.math.exp(Q / (1 * u.second))), np.exp([0.001, 0.002, 0.003]), rtol=1e-6)


# -- NumPy conversion ---------------------------------------------------------------------------


def test_numpy_refuses_dimensionful_quantities_like_brainunit():
    # Before: np.asarray(3 mV) was array(3.) (the mV silently dropped).
    with pytest.raises(TypeError, match=r"Only dimensionless quantities can be converted to NumPy arrays. But got "
                       r"3\.? mV; take the numbers in a unit first: q.to_decimal\(u.mV\)"):  # fmt: skip
        np.asarray(3.0 * u.mV)
    np.testing.assert_allclose(np.asarray(Q / u.second), [0.001, 0.002, 0.003])  # dimensionless: converted
    np.testing.assert_allclose(np.asarray(u.Quantity(2.0, "")), 2.0)
    assert np.asarray(Q.to_decimal(u.second)).shape == (3,)


def test_matplotlib_plots_quantities():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    (line,) = ax.plot(Q, Q * 2)
    np.testing.assert_allclose(line.get_xdata(orig=False), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(line.get_ydata(orig=False), [2.0, 4.0, 6.0])
    # a second series in seconds lands on the axis' unit (ms)
    (line2,) = ax.plot(Q.to(u.second), Q)
    np.testing.assert_allclose(line2.get_xdata(orig=False), [1.0, 2.0, 3.0])


# -- message size --------------------------------------------------------------------------------


def test_mismatch_message_abbreviates_large_operands():
    with pytest.raises(u.UnitMismatchError) as err:
        (jnp.zeros(200) * u.nA) + jnp.ones(200)  # (a plain zero would be accepted, as in brainunit)
    assert str(err.value) == "Cannot calculate \nfloat32[200] nA + float32[200], because units do not match: nA != 1"
    with pytest.raises(u.UnitMismatchError, match=r"^Cannot calculate \n10 ms \+ 5 Hz, because"):  # small: values
        (10 * u.ms) + (5 * u.Hz)


def test_brownian_noise_unit_error_is_short(compat_env):
    # Before: the message printed all 200 zeros of the state ([0. 0. 0. ... 0.] nA + ...).
    with pytest.raises(u.UnitMismatchError) as err:
        bm.Simulator(bm.BrownianNoise(in_size=200, sigma=1.0), dt=0.1 * u.ms).run(0.2 * u.ms, monitors=None)
    message = str(err.value)
    assert "float32[200] nA" in message and "0. 0." not in message and len(message) < 200


# -- brainunit's own keyword names and options ----------------------------------------------------
# The wrappers bind calls to jax.numpy's signatures, whose names differ from brainunit's
# (``sum(x=...)`` is jax.numpy's ``a``, ``clip``'s ``a_min``/``a_max`` its ``min``/``max``);
# brainunit's spellings were refused with "unexpected keyword argument".


@pytest.mark.parametrize(
    "call, values, unit",
    [
        (lambda: u.math.sum(x=Q), 6.0, u.ms),
        (lambda: u.math.mean(x=Q, axis=0), 2.0, u.ms),
        (lambda: u.math.std(x=Q), np.std([1.0, 2.0, 3.0]), u.ms),
        (lambda: u.math.cumsum(x=Q), [1.0, 3.0, 6.0], u.ms),
        (lambda: u.math.clip(Q, a_min=1.5 * u.ms, a_max=0.0025 * u.second), [1.5, 2.0, 2.5], u.ms),
        (lambda: u.math.clip(a=Q, a_min=1.5 * u.ms, a_max=2.5 * u.ms), [1.5, 2.0, 2.5], u.ms),
        (lambda: u.math.add(x=Q, y=1 * u.second), [1001.0, 1002.0, 1003.0], u.ms),
        (lambda: u.math.subtract(Q, y=1 * u.ms), [0.0, 1.0, 2.0], u.ms),
        (lambda: u.math.multiply(x=Q, y=Q), [1.0, 4.0, 9.0], u.ms**2),
        (lambda: u.math.divide(x=Q * u.mV / u.ms, y=Q), [1.0, 1.0, 1.0], u.mV / u.ms),
        (lambda: u.math.maximum(x1=Q, x2=2 * u.ms), [2.0, 2.0, 3.0], u.ms),
        (lambda: u.math.negative(x=Q), [-1.0, -2.0, -3.0], u.ms),
        (lambda: u.math.split(a=Q, indices_or_sections=3)[1], [2.0], u.ms),
        (lambda: u.math.hstack(arrays=[Q, Q]), [1, 2, 3, 1, 2, 3], u.ms),
        (lambda: u.math.ones_like(jnp.ones(2), unit=u.mV), [1.0, 1.0], u.mV),
        (lambda: u.math.zeros_like(Q, unit=u.second), [0.0, 0.0, 0.0], u.second),
        (lambda: u.math.diag(Q, unit=u.second)[1], [0.0, 0.002, 0.0], u.second),
        (lambda: u.math.diag(jnp.ones(2), unit=u.mV)[0], [1.0, 0.0], u.mV),
        (lambda: u.math.triu(A, unit=u.mV), [[1.0, 2.0], [0.0, 5.0]], u.mV),
        (lambda: u.math.tril(A * u.second, unit=u.ms), [[1000.0, 0.0], [3000.0, 5000.0]], u.ms),
        (lambda: u.math.asarray(a=[1.0, 2.0], unit=u.mV), [1.0, 2.0], u.mV),
        (lambda: u.math.array([1.0, 2.0], dtype=jnp.float32, order="K", unit=u.mV), [1.0, 2.0], u.mV),
        (lambda: u.Quantity(mantissa=[1.0, 2.0], unit=u.mV), [1.0, 2.0], u.mV),
        (lambda: u.math.leaky_relu(jnp.array([-1.0, 2.0]) * u.mV, negative_slope=0.5), [-0.5, 2.0], u.mV),
        (lambda: u.math.flatten(jnp.ones((2, 3)) * u.mV), np.ones(6), u.mV),
        (lambda: u.math.flatten(jnp.ones((2, 3, 4)) * u.mV, start_axis=1).shape, None, None),
        (lambda: u.math.unflatten(Q, 0, (3, 1))[:, 0], [1.0, 2.0, 3.0], u.ms),
        (lambda: u.math.remove_diag(A * u.ms), [[2.0], [3.0]], u.ms),
        (lambda: u.math.fix(jnp.array([-1.5, 2.5]) * u.ms), [-1.0, 2.0], u.ms),
        (lambda: u.math.row_stack([Q, Q])[1], [1.0, 2.0, 3.0], u.ms),
    ],
)
def test_brainunit_keyword_names_and_unit_options(call, values, unit):
    out = call()
    if unit is None:  # a shape
        assert out == (2, 12)
    else:
        _is(out, values, unit)


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: u.math.allclose(x=1 * u.second, y=1000 * u.ms), True),
        (lambda: u.math.isnan(a=Q), [False, False, False]),
        (lambda: u.math.array_equal(x=Q, y=Q), True),
        (lambda: u.math.any(x=Q > 2 * u.ms), True),
        (lambda: u.math.alltrue(Q > 0 * u.ms), True),
        (lambda: u.math.sometrue(Q > 5 * u.ms), False),
        (lambda: u.math.exp(1 * u.mV, unit_to_scale=u.mV), np.e),
        (lambda: u.math.sin(jnp.array([1.0, 2.0]) * u.mV, unit_to_scale=u.volt), np.sin([0.001, 0.002])),
        (lambda: u.math.log(10 * u.second, unit_to_scale=u.ms), np.log(10000.0)),
        (lambda: u.math.sigmoid(0.0), 0.5),
        (lambda: u.math.sigmoid(2.0 * u.mV, unit_to_scale=u.mV), 1 / (1 + np.exp(-2.0))),
        (lambda: u.math.softplus(jnp.zeros(2)), [np.log(2.0)] * 2),
        (lambda: u.math.exprel(jnp.array([0.0, 1e-6, 1.0])), [1.0, 1.0000005, np.e - 1]),
        (lambda: u.math.exprel(1.0 * u.mV, unit_to_scale=u.volt), np.expm1(0.001) / 0.001),
        (lambda: u.math.product(jnp.array([2.0, 3.0])), 6.0),
        (lambda: u.math.cumproduct(jnp.array([2.0, 3.0])), [2.0, 6.0]),
        (lambda: u.math.matrix_power(A, 2), A @ A),
        (lambda: u.get_magnitude(obj=3 * u.mV), 3.0),
        (lambda: u.maybe_decimal(val=3 * u.volt, unit=u.mV), 3000.0),
        (lambda: u.math.get_magnitude(Q), [1.0, 2.0, 3.0]),
        (lambda: (u.math.is_quantity(Q), u.math.is_float(Q), u.math.is_int(jnp.arange(2))), (True, True, True)),
    ],
)
def test_brainunit_keyword_calls_with_plain_results(call, expected):
    out = call()
    assert not isinstance(out, u.Quantity), out
    np.testing.assert_allclose(np.asarray(out, dtype=float), np.asarray(expected, dtype=float), rtol=1e-6)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: u.math.sum(Q, x=Q), TypeError, r"sum\(\) got multiple values for argument 'a'"),
        (lambda: u.math.clip(Q, a_min=1 * u.ms, min=1 * u.ms), TypeError, r"clip\(\) got both 'a_min' and 'min'"),
        (lambda: u.math.add(Q, x=Q), TypeError, r"add\(\) got argument 1 both by position and by keyword"),
        (lambda: u.math.exp(jnp.ones(2), unit_to_scale=u.mV), TypeError, r"exp: unit_to_scale=.* is for a Quantity"),
        (lambda: u.math.exp(1 * u.mV, unit_to_scale="mV"), TypeError, r"exp: unit_to_scale must be a brainunit Unit \(e.g. u.mV\), got 'mV'"),
        (lambda: u.math.exp(1 * u.mV, unit_to_scale=u.second), u.UnitMismatchError, r"Cannot convert 1 mV to s"),
        (lambda: u.math.sigmoid(1 * u.mV), u.UnitMismatchError, r"sigmoid requires a dimensionless argument"),
        (lambda: u.math.ones_like(Q, unit="mV"), TypeError, r"ones_like: unit must be a brainunit Unit \(e.g. u.mV\), got 'mV'"),
        (lambda: u.math.diag(Q, unit=u.mV), u.UnitMismatchError, r"ms to mV: units do not match"),
        (lambda: u.math.remove_diag(jnp.ones((2, 3))), ValueError, r"square 2-D matrix, got shape \(2, 3\)"),
        (lambda: u.Quantity(unit=u.mV), TypeError, r"give the numbers once"),
    ],
    ids=lambda v: getattr(v, "__name__", None) if isinstance(v, type) else None,
)
def test_brainunit_keyword_misuse_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- brainunit's Quantity methods -------------------------------------------------------------------
# The facade's Quantity had max/min/mean/sum/std/reshape/... only: q.clip(...), q.cumsum(),
# q.copy() ... raised AttributeError. The values are brainunit 0.1.1's on the same inputs.


@pytest.mark.parametrize(
    "call, values, unit",
    [
        (lambda q: q.copy(), [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.clone(), [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.clip(1.5 * u.ms, 0.0025 * u.second), [2.5, 1.5, 2.0], u.ms),
        (lambda q: q.cumsum(), [3.0, 4.0, 6.0], u.ms),
        (lambda q: q.var(), 2 / 3, u.ms**2),
        (lambda q: q.take(np.array([0, 2])), [3.0, 2.0], u.ms),
        (lambda q: q.repeat(2), [3.0, 3.0, 1.0, 1.0, 2.0, 2.0], u.ms),
        (lambda q: q.tile(2), [3.0, 1.0, 2.0, 3.0, 1.0, 2.0], u.ms),
        (lambda q: q.dot(q), 14.0, u.ms**2),
        (lambda q: q.outer(q)[0], [9.0, 3.0, 6.0], u.ms**2),
        (lambda q: q.ptp(), 2.0, u.ms),
        (lambda q: q.pow(2), [9.0, 1.0, 4.0], u.ms**2),
        (lambda q: q.split(3)[1], [1.0], u.ms),
        (lambda q: q.expand_dims(0)[0], [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.unsqueeze(1)[:, 0], [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.view(3, 1)[:, 0], [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.to_numpy(), [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.to_jax(), [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.float(), [3.0, 1.0, 2.0], u.ms),
        (lambda q: q.to(new_unit=u.second), [0.003, 0.001, 0.002], u.second),
        (lambda q: q.in_unit(u.second, err_msg="never raised"), [0.003, 0.001, 0.002], u.second),
    ],
)
def test_quantity_methods_follow_brainunit(call, values, unit):
    _is(call(jnp.array([3.0, 1.0, 2.0]) * u.ms), values, unit)


def test_quantity_methods_with_plain_results_and_refusals():
    q = jnp.array([3.0, 1.0, 2.0]) * u.ms
    assert q.argsort().tolist() == [1, 2, 0] and bool(q.all()) and q.searchsorted(2.5 * u.ms) == 3
    assert q.has_same_unit(1 * u.second) and not q.has_same_unit(1 * u.mV)
    assert q.repr_in_unit(u.second) == str(q.to(u.second))
    with pytest.raises(u.UnitMismatchError, match="^my message$"):
        q.in_unit(u.mV, err_msg="my message")
    # In place in brainunit; a quantity here is immutable: a message, not an AttributeError.
    with pytest.raises(TypeError, match=r"q.sort\(...\) changes the quantity in place .* q = u.math.sort\(q\)"):
        q.sort()
    with pytest.raises(TypeError, match=r"q.fill\(...\) changes the quantity in place"):
        q.fill(1 * u.ms)


def test_check_units_and_check_dims_decorators_as_brainunit():
    # brainunit 0.5.2's behaviour for the same functions (the facade had neither decorator).
    @u.check_units(x=u.mV, result=u.mV)
    def doubled(x, y=1.0):
        return x * 2

    assert u.get_unit(doubled(3 * u.mV)) == u.mV
    assert (3 * u.mV).factorless().to_decimal(u.mV) == 3.0  # brainunit: 3 mV
    for wrong in (3 * u.volt, 3.0, 3 * u.ms):  # a unit exactly: volts are not millivolts
        with pytest.raises(u.UnitMismatchError, match=r"Function 'doubled' expected a value with unit mV for argument 'x'"):
            doubled(wrong)

    @u.check_dims(x=u.mV.dim)
    def voltage(x):
        return x

    assert u.get_unit(voltage(3 * u.volt)) == u.volt  # any unit of the dimension
    with pytest.raises(u.DimensionMismatchError, match=r"expected a value with dimension .* for argument 'x' but got '3 ms'"):
        voltage(3 * u.ms)

    @u.check_units(x=u.mV, result=u.mV)
    def unitless(x):
        return 1.0

    with pytest.raises(u.UnitMismatchError, match=r"The return value of function 'unitless' was expected to have unit mV but got unit 1"):
        unitless(3 * u.mV)

    @u.check_units(flag=bool, x="y", z=None)
    def mixed(flag, x, y, z=None):
        return x

    assert u.get_unit(mixed(True, 3 * u.ms, 2 * u.ms, z=5 * u.Hz)) == u.ms
    with pytest.raises(TypeError, match=r"Function 'mixed' expected a boolean value for argument 'flag' but got '1.0'"):
        mixed(1.0, 3 * u.ms, 2 * u.ms)
    with pytest.raises(u.UnitMismatchError, match=r"argument 'x' has unit ms, while argument 'y' has unit mV"):
        mixed(True, 3 * u.ms, 2 * u.mV)
    def f(x):
        return x

    with pytest.raises(TypeError, match=r"check_units: f has no argument\(s\) \['z'\]; its arguments are \['x'\]"):
        u.check_units(z=u.mV)(f)
