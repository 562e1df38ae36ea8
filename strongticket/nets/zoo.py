"""The model zoo: the small networks of the lottery-ticket literature, built by name.

Every model except ResNet-20 is a plain :class:`torch.nn.Sequential` of ``Flatten``, ``Linear``,
``Conv2d``, ``ReLU`` and ``MaxPool2d`` so that a sequential ``NetSpec`` can describe it and the
constructions can use it as a target. Architectures:

* ``fc2``: 784-500-10, the two-layer target of Pensia et al. 2020 (no biases by default).
* ``lenet300100``: in-300-100-out (LeCun et al. 1998; Frankle & Carbin 2019, "Lenet").
* ``lenet5``: Caffe-style LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, fc 500, fc out
  (ReLU after each conv and hidden fc, as in Synaptic-Flow and open_lth reproductions).
* ``conv2`` / ``conv4`` / ``conv6``: Frankle & Carbin 2019 (Fig. 2), Ramanujan et al. 2020
  (``models/frankle.py``): pairs of 3x3 convs (64,64 | 128,128 | 256,256), max-pool after each pair,
  then FC 256-256-out.
* ``resnet20``: the CIFAR ResNet-20 of He et al. 2016 (Sec. 4.2) with BatchNorm, 16/32/64 channels, and
  1x1-conv projection shortcuts where the shape changes (as open_lth's ``cifar_resnet_20``).

:func:`build_model` draws the initial weights from an explicit ``torch.Generator`` (``seed=`` or
``generator=``), never from the global random state, so two builds with the same seed are bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from strongticket.errors import InputError


def _w(h: int, width: float) -> int:
    """Scaled hidden width: ``round(h * width)``, at least 1."""
    return max(1, int(round(h * width)))


@dataclass(frozen=True)
class ModelEntry:
    """One zoo entry: its builder, its bias default and a one-line description."""

    name: str
    builder: Callable[..., nn.Module]
    default_bias: bool
    description: str


def _mlp(in_features: int, hidden: list[int], num_classes: int, bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    prev = in_features
    for h in hidden:
        layers += [nn.Linear(prev, h, bias=bias), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, num_classes, bias=bias))
    return nn.Sequential(*layers)


def _fc2(*, num_classes: int, in_channels: int, image_size: int, width: float, bias: bool) -> nn.Module:
    return _mlp(in_channels * image_size**2, [_w(500, width)], num_classes, bias)


def _lenet300100(*, num_classes: int, in_channels: int, image_size: int, width: float, bias: bool) -> nn.Module:
    return _mlp(in_channels * image_size**2, [_w(300, width), _w(100, width)], num_classes, bias)


def _lenet5(*, num_classes: int, in_channels: int, image_size: int, width: float, bias: bool) -> nn.Module:
    s = ((image_size - 4) // 2 - 4) // 2
    if s < 1:
        raise InputError(f"lenet5 needs image_size >= 16 (two 5x5 convs and two 2x2 pools), got {image_size}")
    c1, c2, f = _w(20, width), _w(50, width), _w(500, width)
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 5, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * s * s, f, bias=bias), nn.ReLU(),
        nn.Linear(f, num_classes, bias=bias),
    )


def _convn(pairs: int) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int, image_size: int, width: float, bias: bool) -> nn.Module:
        s = image_size // 2**pairs
        if s < 1:
            raise InputError(f"conv{2 * pairs} needs image_size >= {2**pairs} ({pairs} 2x2 pools), got {image_size}")
        layers: list[nn.Module] = []
        c = in_channels
        for p in range(pairs):
            out = _w(64 * 2**p, width)
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=bias), nn.ReLU(),
                       nn.Conv2d(out, out, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2)]
            c = out
        f = _w(256, width)
        layers += [nn.Flatten(), nn.Linear(c * s * s, f, bias=bias), nn.ReLU(),
                   nn.Linear(f, f, bias=bias), nn.ReLU(), nn.Linear(f, num_classes, bias=bias)]
        return nn.Sequential(*layers)

    return build


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (1x1 conv-BN projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):  # noqa: D102
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet of depth ``6n+2`` (He et al. 2016, Sec. 4.2): stem, three stages of ``n`` blocks, pool, fc.

    Input ``(B, C, H, W)``, output ``(B, num_classes)`` logits.
    """

    def __init__(self, n: int, *, num_classes: int, in_channels: int, width: float, bias: bool) -> None:
        super().__init__()
        widths = [_w(16, width), _w(32, width), _w(64, width)]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        blocks: list[nn.Module] = []
        cin = widths[0]
        for i, cout in enumerate(widths):
            for j in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes, bias=bias)

    def forward(self, x):  # noqa: D102
        x = self.relu(self.bn(self.conv(x)))
        return self.fc(self.flatten(self.pool(self.blocks(x))))


def _resnet20(*, num_classes: int, in_channels: int, image_size: int, width: float, bias: bool) -> nn.Module:
    return ResNet(3, num_classes=num_classes, in_channels=in_channels, width=width, bias=bias)


_REGISTRY: dict[str, ModelEntry] = {e.name: e for e in [
    ModelEntry("fc2", _fc2, False, "784-500-10 two-layer MLP, Pensia et al. 2020's target (no bias by default)"),
    ModelEntry("lenet300100", _lenet300100, True, "LeNet-300-100 MLP (Frankle & Carbin 2019)"),
    ModelEntry("lenet5", _lenet5, True, "Caffe LeNet-5: conv20-pool-conv50-pool-fc500-fc"),
    ModelEntry("conv2", _convn(1), True, "Conv-2 (Frankle & Carbin 2019): 64,64,pool, fc 256-256"),
    ModelEntry("conv4", _convn(2), True, "Conv-4: 64,64,pool,128,128,pool, fc 256-256"),
    ModelEntry("conv6", _convn(3), True, "Conv-6: 64,64,pool,128,128,pool,256,256,pool, fc 256-256"),
    ModelEntry("resnet20", _resnet20, True, "CIFAR ResNet-20 with BatchNorm (He et al. 2016)"),
]}


def model_names() -> list[str]:
    """Return the names of the zoo's models, in registry order."""
    return list(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """Return the zoo entry called ``name``; an unknown name raises :class:`InputError` listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(_REGISTRY)}") from None


@torch.no_grad()
def default_init(model: nn.Module, generator: torch.Generator) -> None:
    """Initialise ``model`` in place with PyTorch's default laws, every draw from ``generator`` (CPU).

    ``Linear`` and ``Conv2d``: weights Kaiming-uniform with ``a = sqrt(5)``, i.e. U(+-1/sqrt(fan_in)), and biases
    U(+-1/sqrt(fan_in)); ``BatchNorm``: weight 1, bias 0, running statistics reset. Modules are visited in
    ``model.modules()`` order, weight before bias, so the draws depend only on the architecture and the generator.

    Raises
    ------
    TypeError
        For a module with parameters of another type (no default law known here).
    """
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                bound = 1 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()  # weight 1, bias 0, running mean 0 and variance 1: no draws
        elif any(True for _ in m.parameters(recurse=False)):
            raise TypeError(f"default_init has no law for {type(m).__name__}")


def build_model(name: str, *, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                width: float = 1.0, bias: bool | None = None, seed: int | None = None,
                generator: torch.Generator | None = None) -> nn.Module:
    """Return a zoo model initialised with PyTorch's default laws from an explicit generator.

    Parameters
    ----------
    name : str
        One of :func:`model_names`.
    num_classes : int
        Number of output logits.
    in_channels, image_size : int
        Input shape ``(in_channels, image_size, image_size)``; fully connected models take
        ``in_channels * image_size**2`` inputs (scikit-learn digits: 1, 8 -> 64).
    width : float
        Multiplier of every hidden width (rounded, at least 1); input and output sizes are unchanged.
    bias : bool or None
        Whether layers carry biases; ``None`` takes the model's default (``False`` for ``fc2``,
        ``True`` otherwise; ResNet convolutions never have biases, only its final fc).
    seed : int, optional
        Seed of a fresh CPU ``torch.Generator`` for the initial weights (see :func:`default_init`).
    generator : torch.Generator, optional
        A CPU generator to draw the initial weights from instead (advanced by the draws).

    Exactly one of ``seed`` and ``generator`` is required, except when the default device is ``meta``
    (``with torch.device("meta"): build_model(...)``): the model is then returned on the meta device and
    nothing is drawn (for callers that only need the architecture, or load or re-initialise the weights).

    Returns
    -------
    torch.nn.Module
        Input ``(B, in_channels, image_size, image_size)``, output ``(B, num_classes)`` logits; on the CPU
        (or the meta device, see above). The global random state is neither read nor advanced.
    """
    entry = model_entry(name)
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not (isinstance(in_channels, int) and in_channels >= 1):
        raise InputError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not (isinstance(image_size, int) and image_size >= 1):
        raise InputError(f"image_size must be a positive integer, got {image_size!r}")
    if not width > 0:
        raise InputError(f"width must be > 0, got {width!r}")
    if seed is not None and generator is not None:
        raise InputError(f"build_model takes seed or generator, not both (got seed={seed!r} and a generator)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise InputError(f"generator must be a CPU torch.Generator, got {generator!r}")
    on_meta = torch.empty(0).device.type == "meta"
    if seed is None and generator is None and not on_meta:
        raise InputError(f"build_model({name!r}) needs seed= or generator= for its initial weights (the zoo never "
                         "draws from the global random state)")
    # Built on the meta device, so the modules' own initialisers draw nothing; then materialised and drawn here.
    with torch.device("meta"):
        model = entry.builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                              width=float(width), bias=entry.default_bias if bias is None else bool(bias))
    if on_meta:
        return model
    model = model.to_empty(device="cpu")
    default_init(model, torch.Generator().manual_seed(seed) if generator is None else generator)
    return model
