import jax
import pytest


@pytest.fixture
def x64():
    """Run a test in double precision (jax_enable_x64), restoring the default afterwards."""
    with jax.enable_x64(True):
        yield
