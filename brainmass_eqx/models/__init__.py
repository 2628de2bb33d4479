"""Neural-mass node models."""

from ._base import AbstractModel as AbstractModel
from ._base import Uniform as Uniform
from ._base import initial as initial
from ._base import parameter as parameter
from ._fitzhugh_nagumo import FitzHughNagumo as FitzHughNagumo
from ._jansen_rit import JansenRit as JansenRit
from ._linear import Linear as Linear
from ._lorenz import Lorenz as Lorenz
from ._oscillators import (
    AbstractXYOscillator as AbstractXYOscillator,
)
from ._oscillators import (
    Hopf as Hopf,
)
from ._oscillators import (
    StuartLandau as StuartLandau,
)
from ._oscillators import (
    VanDerPol as VanDerPol,
)
from ._wilson_cowan import AbstractWilsonCowan as AbstractWilsonCowan
from ._wilson_cowan import WilsonCowan as WilsonCowan
