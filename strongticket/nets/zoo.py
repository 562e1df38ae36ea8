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
* ``resnet20``: the CIFAR ResNet-20 of He et al. 2016 (§4.2) with BatchNorm, 16/32/64 channels, and
  1x1-conv projection shortcuts where the shape changes (as open_lth's ``cifar_resnet_20``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    """CIFAR ResNet of depth ``6n+2`` (He et al. 2016, §4.2): stem, three stages of ``n`` blocks, pool, fc.

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


def build_model(name: str, *, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                width: float = 1.0, bias: bool | None = None) -> nn.Module:
    """Return a freshly initialised zoo model (PyTorch default init; callers reseed weights themselves).

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

    Returns
    -------
    torch.nn.Module
        Input ``(B, in_channels, image_size, image_size)``, output ``(B, num_classes)`` logits.
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
    return entry.builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                         width=float(width), bias=entry.default_bias if bias is None else bool(bias))
