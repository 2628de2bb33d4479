"""Neural-mass node models."""

from ._base import (
    AbstractModel as AbstractModel,
    Uniform as Uniform,
    initial as initial,
    parameter as parameter,
)
from ._coombes_byrne import CoombesByrne as CoombesByrne
from ._delay_history import SelfDelaySolver as SelfDelaySolver
from ._epileptor import Epileptor as Epileptor
from ._fitzhugh_nagumo import FitzHughNagumo as FitzHughNagumo
from ._generic_2d import Generic2dOscillator as Generic2dOscillator
from ._horn import HORN as HORN
from ._jansen_rit import JansenRit as JansenRit
from ._kuramoto import Kuramoto as Kuramoto
from ._larter_breakspear import LarterBreakspear as LarterBreakspear
from ._linear import Linear as Linear
from ._lorenz import Lorenz as Lorenz
from ._montbrio import MontbrioPazoRoxin as MontbrioPazoRoxin
from ._oscillators import (
    AbstractXYOscillator as AbstractXYOscillator,
    Hopf as Hopf,
    StuartLandau as StuartLandau,
    VanDerPol as VanDerPol,
)
from ._registry import (
    ModelDescription as ModelDescription,
    ModelInfo as ModelInfo,
    describe_model as describe_model,
    list_models as list_models,
    model_registry as model_registry,
)
from ._sequence import (
    AbstractSequenceLayer as AbstractSequenceLayer,
    AdditiveRecurrence as AdditiveRecurrence,
    Affine as Affine,
    DelayedAdditiveRecurrence as DelayedAdditiveRecurrence,
    HORNSeqLayer as HORNSeqLayer,
    HORNSeqNetwork as HORNSeqNetwork,
    JansenRit2Layer as JansenRit2Layer,
    JansenRitLayer as JansenRitLayer,
    JansenRitNetwork as JansenRitNetwork,
    JansenRitTR as JansenRitTR,
    WilsonCowanSeqLayer as WilsonCowanSeqLayer,
    WilsonCowanSeqNetwork as WilsonCowanSeqNetwork,
)
from ._symplectic import SymplecticEuler as SymplecticEuler
from ._threshold_linear import ThresholdLinear as ThresholdLinear
from ._wilson_cowan import (
    AbstractWilsonCowan as AbstractWilsonCowan,
    WilsonCowan as WilsonCowan,
    WilsonCowanAdaptive as WilsonCowanAdaptive,
    WilsonCowanDelayed as WilsonCowanDelayed,
    WilsonCowanDivisive as WilsonCowanDivisive,
    WilsonCowanDivisiveInput as WilsonCowanDivisiveInput,
    WilsonCowanLinear as WilsonCowanLinear,
    WilsonCowanNoSaturation as WilsonCowanNoSaturation,
    WilsonCowanSimplified as WilsonCowanSimplified,
    WilsonCowanSymmetric as WilsonCowanSymmetric,
    WilsonCowanThreePopulation as WilsonCowanThreePopulation,
)
from ._wong_wang import (
    ReducedWongWang as ReducedWongWang,
    WongWang as WongWang,
    WongWangExcInh as WongWangExcInh,
)
