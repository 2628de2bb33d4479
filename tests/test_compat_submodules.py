"""brainmass's submodule paths on the compat facade (``from brainmass.noise import OUProcess``)."""

import importlib
import sys

import pytest

import brainmass_eqx.compat as bm
from brainmass_eqx.compat._submodules import SUBMODULES, NameNotInFacadeError


def test_every_submodule_holds_the_facade_objects():
    for sub, names in SUBMODULES.items():
        module = importlib.import_module(f"brainmass_eqx.compat.{sub}")
        assert module.__all__, sub
        for name in module.__all__:
            if name not in bm.__all__:
                continue  # brainmass has these in the submodule only (test_compat_sequence_submodules.py)
            assert name in names and getattr(module, name) is getattr(bm, name), f"{sub}.{name}"


def test_submodule_paths():
    # Before: AttributeError: module 'brainmass' has no attribute 'coupling'.
    assert bm.coupling.DiffusiveCoupling is bm.DiffusiveCoupling
    assert bm.noise.OUProcess is bm.OUProcess
    from brainmass_eqx.compat.hopf import HopfStep
    from brainmass_eqx.compat.list_models import ModelInfo

    assert HopfStep is bm.HopfStep and ModelInfo is bm.ModelInfo
    assert callable(bm.list_models) and bm.list_models()  # still brainmass's function
    assert len(bm.__all__) == 84  # the top-level API is unchanged


def test_the_table_covers_every_model():
    listed = {name for names in SUBMODULES.values() for name in names}
    assert {name for name in bm.__all__ if name.endswith("Step")} <= listed


def test_installed_submodules():
    # Before: ModuleNotFoundError: No module named 'brainmass.noise'.
    bm.install()
    try:
        import brainmass.coupling
        from brainmass.noise import OUProcess
        from brainmass.wilson_cowan import WilsonCowanStep

        assert OUProcess is bm.OUProcess and WilsonCowanStep is bm.WilsonCowanStep
        assert brainmass.coupling.sigmoidal_coupling is bm.sigmoidal_coupling
        assert sys.modules["brainmass.typing"].Initializer is bm.Initializer
    finally:
        bm.uninstall()
    assert "brainmass.noise" not in sys.modules


def test_names_the_facade_lacks():
    with pytest.raises(ImportError, match=r"brainmass.wilson_cowan.WilsonCowanBase is not provided by the compat "
                       r"facade: brainmass 0.1.1 keeps it in brainmass.wilson_cowan only .* holds WilsonCowanStep"):
        from brainmass_eqx.compat.wilson_cowan import WilsonCowanBase  # noqa: F401
    with pytest.raises(NameNotInFacadeError, match=r"WilsonCowanBase is not provided"):
        bm.wilson_cowan.WilsonCowanBase  # noqa: B018
    with pytest.raises(ImportError, match=r"brainmass.hopf has no 'WilsonCowanStep' .*use brainmass.WilsonCowanStep"):
        from brainmass_eqx.compat.hopf import WilsonCowanStep  # noqa: F401
    with pytest.raises(AttributeError, match=r"module 'brainmass.hopf' has no attribute 'nope'"):
        bm.hopf.nope  # noqa: B018
    assert not hasattr(bm.hopf, "__wrapped__")  # dunder probes stay AttributeErrors
