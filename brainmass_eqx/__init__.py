"""brainmass_eqx: functional whole-brain neural-mass modelling on JAX, Equinox and diffrax."""

__version__ = "0.1.0"
