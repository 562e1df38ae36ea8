"""Networks as data: :class:`NetSpec` (layers, shapes, activations), seeded random weights, the model zoo.

* :mod:`strongticket.nets.spec`: ``NetSpec``, ``trace_module`` (read a spec out of a target module), ``build()``;
* :mod:`strongticket.nets.distributions`: ``WeightDistribution.generate(spec, seed)``, one generator per tensor;
* :mod:`strongticket.nets.zoo`: ``build_model(name, ...)`` for the architectures of the papers.
"""

from strongticket.nets.distributions import LAWS, WeightDistribution, parameter_seed
from strongticket.nets.spec import (
    ACTIVATIONS,
    Conv2d,
    Flatten,
    Linear,
    NetSpec,
    Pool,
    SpecNet,
    TracedNet,
    trace_module,
)

__all__ = [
    "ACTIVATIONS",
    "LAWS",
    "Conv2d",
    "Flatten",
    "Linear",
    "NetSpec",
    "Pool",
    "SpecNet",
    "TracedNet",
    "WeightDistribution",
    "parameter_seed",
    "trace_module",
]
