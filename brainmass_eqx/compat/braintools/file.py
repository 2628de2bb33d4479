"""``braintools.file`` on the facade: its names exist and raise an error naming the alternative.

braintools' checkpoint files (``msgpack_save`` / ``msgpack_load``) are msgpack-encoded state
dictionaries of brainstate ``State`` objects, and its MATLAB I/O wraps SciPy; neither
brainmass 0.1.1's code nor its documentation uses them, and the facade does not depend on
``msgpack``. Importing or reading one of them raises `FileHelperNotInFacadeError` (an
``ImportError``, so that ``from braintools.file import msgpack_save`` shows the message)
saying what to use instead:

- a model's states: ``{path: np.asarray(u.get_magnitude(s.value)) for path, s in
  model.states().items()}`` written with ``np.savez`` (``np.load`` and ``s.value = ...`` to
  restore), or a run's ``Trajectory.save(path)``;
- a fit: ``pickle.dump(result, f)`` (a `brainmass_eqx.fit.FitResult` keeps its optimizer when
  ``cloudpickle`` is installed) or the core Fitter's ``checkpoint=`` / ``resume=True``;
- MATLAB files: ``scipy.io.savemat`` / ``scipy.io.loadmat``.
"""

from __future__ import annotations

__all__: list[str] = []

_ALTERNATIVES = {
    "msgpack_save": "save the states' values with NumPy: np.savez(path, **{'.'.join(map(str, p)) if isinstance(p, "
    "tuple) else str(p): np.asarray(u.get_magnitude(s.value)) for p, s in model.states().items()}) (a run: "
    "Trajectory.save(path); a fit: pickle.dump(result, f))",
    "msgpack_load": "load values saved with np.savez (np.load(path)) and assign them: state.value = data[name] "
    "(a run: brainmass_eqx.Trajectory.load(path); a fit: pickle.load(f))",
    "save_matfile": "use scipy.io.savemat(path, {name: array, ...})",
    "load_matfile": "use scipy.io.loadmat(path)",
}
# braintools.file's other names (checkpoint plumbing) share msgpack_save's alternative.
_NAMES = (
    "msgpack_from_state_dict",
    "msgpack_to_state_dict",
    "msgpack_register_serialization",
    "AsyncManager",
    "AlreadyExistsError",
    "InvalidCheckpointPath",
    *_ALTERNATIVES,
)


class FileHelperNotInFacadeError(ImportError):
    """A ``braintools.file`` name: not provided by the facade (see the module docstring)."""


def __getattr__(name: str):
    if name in _NAMES:
        instead = _ALTERNATIVES.get(name, _ALTERNATIVES["msgpack_save"])
        raise FileHelperNotInFacadeError(
            f"braintools.file.{name} is not provided by the brainmass_eqx compat facade (brainmass 0.1.1 does not use "
            f"braintools' msgpack checkpoints or MATLAB I/O, and the facade does not depend on msgpack). Instead, "
            f"{instead}."
        )
    raise AttributeError(f"module 'braintools.file' has no attribute {name!r}")
