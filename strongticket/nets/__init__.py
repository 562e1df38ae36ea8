"""Networks as data: :class:`NetSpec` (layers, shapes, activations), seeded random weights, the model zoo.

* :mod:`strongticket.nets.activations`: the activation registry (``activation(name)``, constants per entry);
* :mod:`strongticket.nets.spec`: ``NetSpec`` and its layers, ``build()``;
* :mod:`strongticket.nets.trace`: ``trace_module`` (read a spec and its weights out of a target module);
* :mod:`strongticket.nets.distributions`: ``WeightDistribution.generate(spec, seed)``, one generator per tensor;
* :mod:`strongticket.nets.zoo`: ``build_model(name, ..., seed=...)`` for the architectures of the papers.
"""

from strongticket.nets.activations import ACTIVATIONS, REGISTRY, Activation, activation
from strongticket.nets.distributions import LAWS, WeightDistribution, parameter_seed
from strongticket.nets.spec import Conv2d, Flatten, Linear, NetSpec, Pool, SpecNet
from strongticket.nets.trace import TracedNet, spec_from_module, trace_module

__all__ = [
    "ACTIVATIONS",
    "LAWS",
    "REGISTRY",
    "Activation",
    "Conv2d",
    "Flatten",
    "Linear",
    "NetSpec",
    "Pool",
    "SpecNet",
    "TracedNet",
    "WeightDistribution",
    "activation",
    "parameter_seed",
    "spec_from_module",
    "trace_module",
]
