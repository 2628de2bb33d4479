"""brainmass_eqx: functional whole-brain neural-mass modelling on JAX, Equinox and diffrax."""

from . import models as models
from . import solvers as solvers
from ._param import (
    AbstractTransform as AbstractTransform,
)
from ._param import (
    Exp as Exp,
)
from ._param import (
    Identity as Identity,
)
from ._param import (
    Param as Param,
)
from ._param import (
    Sigmoid as Sigmoid,
)
from ._param import (
    Softplus as Softplus,
)
from ._param import (
    is_param as is_param,
)
from ._param import (
    partition_trainable as partition_trainable,
)
from ._param import (
    trainable_spec as trainable_spec,
)
from ._param import (
    unwrap as unwrap,
)
from ._simulate import SimulationDivergedError as SimulationDivergedError
from ._simulate import Trajectory as Trajectory
from ._simulate import simulate as simulate
from ._units import CANONICAL_UNITS as CANONICAL_UNITS
from ._units import UnitError as UnitError
from .models import (
    AbstractModel as AbstractModel,
)
from .models import (
    FitzHughNagumo as FitzHughNagumo,
)
from .models import (
    Hopf as Hopf,
)
from .models import (
    JansenRit as JansenRit,
)
from .models import (
    Linear as Linear,
)
from .models import (
    Lorenz as Lorenz,
)
from .models import (
    StuartLandau as StuartLandau,
)
from .models import (
    Uniform as Uniform,
)
from .models import (
    VanDerPol as VanDerPol,
)
from .models import (
    WilsonCowan as WilsonCowan,
)
from .solvers import RK4 as RK4
from .solvers import ExponentialEuler as ExponentialEuler

__version__ = "0.1.0"
