"""Run a comparison's units into a run directory, one result file per unit, resumable and shardable.

Layout of a comparison directory::

    compare.json            the configuration, its digest and the shard that wrote the directory (the marker)
    pretrain/s<seed>/       the seed's pre-training run, when the configuration has a [pretrain] table
    targets/s<seed>/        the dense target of each seed: a training run (``strongticket train``'s layout)
    work/<unit>/            a finder's training run, or a construction's ticket directory
    results/<unit>.json     one finished unit (written atomically when it finishes)

A rerun skips every unit with a result file and resumes the training run a kill interrupted, so a kill loses
at most the unit in flight. The dense target of a seed is needed by its dense row and by every construction on
it; a shard that runs a construction whose target another shard owns trains that target itself, from the same
seed, so a shard never waits for another (the target is a deterministic function of the configuration).

What a unit's result holds (:data:`RESULT_FIELDS`): the row it belongs to, whether it needed training, the
size of the network it was cut from (the random network of a construction or of edge-popup, the trained model
otherwise), the parameters it keeps, its density and test accuracy, for a construction its errors to the
target it approximates (the largest output error measured on the test images, in the l_inf norm, the largest
an adversarial search finds inside the set the bound covers, and the construction's certified bound over that
set), its wall time and device. Fields added after the format's first results (:data:`OPTIONAL_FIELDS`) may
be missing from older result files; every new file holds them.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from strongticket.compare.config import CompareConfig, ConstructEntry
from strongticket.compare.units import Unit, find_unit_id, plan, shard
from strongticket.errors import InputError
from strongticket.files import check_writable_directory, has_format, read_json_object, write_json_atomic

FORMAT = "strongticket-compare"
MARKER = "compare.json"

#: every key of a unit's result file; ``None`` where it does not apply
RESULT_FIELDS = ("unit", "kind", "label", "method", "seed", "requested_density", "needs_training",
                 "network_params", "ticket_params", "density", "accuracy", "target_accuracy", "error_measured",
                 "error_certified", "certified_norm", "random_width", "wall_time_s", "device", "warnings")

#: fields that depend on the machine and the moment, not on the configuration (ignored when shards are
#: compared with an unsharded run)
OPTIONAL_FIELDS = ("error_adversarial",)
TIMING_FIELDS = ("wall_time_s", "device")
#: The adversarial check of a constructed ticket: signed- or normalised-gradient ascent from this many test
#: images, this many steps (results written before it existed have no ``error_adversarial``).
ADVERSARIAL_BATCH = 16
ADVERSARIAL_STEPS = 20


def is_compare_dir(path: Path) -> bool:
    """Whether ``path`` holds a comparison's marker (``compare.json`` with ``format: strongticket-compare``)."""
    return has_format(path / MARKER, FORMAT)


def open_directory(out: Path, config: CompareConfig, *, shard_spec: tuple[int, int] | None,
                   overwrite: bool) -> bool:
    """Create ``out`` for ``config`` or check that it holds the same comparison; return True when resuming.

    An existing comparison directory of the same configuration is resumed; one of another configuration is
    refused (or, with ``overwrite``, replaced); anything else that strongticket did not write is never touched.
    """
    import shutil

    marker = out / MARKER
    exists = check_writable_directory(out, overwrite=True, marker=MARKER, what="--out",
                                      is_marker=lambda p: is_compare_dir(p.parent))
    record = {"format": FORMAT, "digest": config.digest(), "config": config.to_dict(),
              "shard": None if shard_spec is None else f"{shard_spec[0]}/{shard_spec[1]}"}
    if exists and marker.is_file():
        old = read_json_object(marker, InputError)
        if old.get("digest") == record["digest"] and old.get("shard") == record["shard"]:
            return True
        if not overwrite:
            what = "configuration" if old.get("digest") != record["digest"] else \
                f"shard ({old.get('shard') or 'unsharded'})"
            raise InputError(f"--out {str(out)!r} holds a comparison of another {what}; pass --overwrite to replace "
                             "it, or choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, record, what="--out")
    return False


class Runner:
    """Runs units of one comparison into one directory (see the module docstring).

    Parameters
    ----------
    config : CompareConfig
        The comparison.
    out : Path
        Its directory (already opened by :func:`open_directory`).
    data_dir : Path or None
        Where the datasets live (default ``$STRONGTICKET_DATA``).
    device : str
        Training device: ``auto``, ``cpu``, ``cuda``... (constructions run on the CPU).
    note : callable, optional
        Receives one line per event (unit started, finished, skipped).
    """

    def __init__(self, config: CompareConfig, out: Path, *, data_dir: Path | None = None, device: str = "auto",
                 note: Callable[[str], None] | None = None) -> None:
        self.config, self.out, self.data_dir, self.device = config, out, data_dir, device
        self.note = note or (lambda _m: None)
        self._dataset: Any = None

    def dataset(self) -> Any:
        """The task's dataset on the CPU, read once per runner (every construction unit checks on its test split)."""
        if self._dataset is None:
            from strongticket.train.data import load_dataset

            self._dataset = load_dataset(self.config.base_run(self.config.seeds[0]).data.dataset, self.data_dir, "cpu")
        return self._dataset

    # ------------------------------------------------------------------------------------------------ units
    def run(self, shard_spec: tuple[int, int] | None = None) -> list[dict[str, Any]]:
        """Run every unit of this shard (all of them without one) that has no result yet; return all results
        present in the directory afterwards."""
        units = plan(self.config)
        mine = units if shard_spec is None else shard(units, *shard_spec)
        for n, unit in enumerate(mine, start=1):
            path = self.result_path(unit)
            if path.is_file():
                self.note(f"[{n}/{len(mine)}] {unit.id}: done before, skipped")
                continue
            self.note(f"[{n}/{len(mine)}] {unit.id}: running")
            start = time.perf_counter()
            result = self.run_unit(unit)
            self.note(f"[{n}/{len(mine)}] {unit.id}: accuracy {100 * result['accuracy']:.2f}% at density "
                      f"{result['density']:.4g} ({time.perf_counter() - start:.0f} s)")
        return read_results(self.out)

    def result_path(self, unit: Unit) -> Path:
        """Where ``unit``'s result file goes."""
        return self.out / "results" / f"{unit.id}.json"

    def run_unit(self, unit: Unit) -> dict[str, Any]:
        """Run one unit and write its result file atomically; return the result."""
        runner = {"dense": self._dense, "construct": self._construct, "find": self._find}[unit.kind]
        result = {key: None for key in RESULT_FIELDS + OPTIONAL_FIELDS}
        result.update({"unit": unit.id, "kind": unit.kind, "label": unit.label, "method": unit.method,
                       "seed": unit.seed, "requested_density": unit.density, "warnings": []})
        result.update(runner(unit))
        write_json_atomic(self.result_path(unit), result)
        return result

    # ---------------------------------------------------------------------------------------- the target
    def target(self, seed: int) -> tuple[dict[str, Any], Path]:
        """The dense target of ``seed``: train it (or resume, or reuse a finished run); return its summary and
        run directory."""
        from strongticket.train.run import train_run

        run_dir = self.out / "targets" / f"s{seed}"
        summary = train_run(self.config.base_run(seed, self.pretrained(seed)), run_dir, data_dir=self.data_dir,
                            device=self.device)
        return summary, run_dir

    def pretrained(self, seed: int) -> str | None:
        """The finished pre-training run of ``seed`` that starts its target and finders (trained, resumed or
        reused here, like the targets, so shards never wait for each other); None without ``[pretrain]``."""
        from strongticket.train.run import train_run

        config = self.config.pretrain_run(seed)
        if config is None:
            return None
        run_dir = self.out / "pretrain" / f"s{seed}"
        train_run(config, run_dir, data_dir=self.data_dir, device=self.device)
        return str(run_dir)

    def target_module(self, seed: int, entry: ConstructEntry | None = None
                      ) -> tuple[torch.nn.Module, tuple[int, ...], dict[str, Any]]:
        """The target of construction ``entry`` for ``seed`` as a CPU module in eval mode, its input shape and
        its run's summary: the seed's dense target, or the ticket of the finder that ``entry.target`` names
        (trained here if no unit has yet, into the directory that finder's unit reuses), whose pruned weights
        are exact zeros."""
        from safetensors.torch import load_file

        from strongticket.nets.checkpoint import load_state_into
        from strongticket.nets.zoo import build_model
        from strongticket.train.run import train_run

        if entry is None or entry.target is None:
            summary, run_dir = self.target(seed)
            cfg = self.config.base_run(seed)  # the model's name and width: the same with or without init_from
            what = f"the target of seed {seed}"
        else:
            index, density = self.config.target_finder(entry)
            finder = self.config.find[index]
            run_dir = self.out / "work" / find_unit_id(finder.label, density, seed)
            cfg = self.config.find_run(finder, density, seed, self.pretrained(seed))
            summary = train_run(cfg, run_dir, data_dir=self.data_dir, device=self.device)
            what = f"the {finder.label} @ {density:g} ticket of seed {seed}"
        data = self.dataset()
        shape = tuple(data.input_shape)
        net = build_model(cfg.model.model, num_classes=data.num_classes, in_channels=shape[0], image_size=shape[1],
                          width=cfg.model.width, bias=_bias(run_dir), seed=0)
        load_state_into(net, load_file(str(run_dir / "model.safetensors")), what)
        return net.eval(), shape, summary

    # ------------------------------------------------------------------------------------------- kinds
    def _dense(self, unit: Unit) -> dict[str, Any]:
        summary, _ = self.target(unit.seed)
        return {"needs_training": True, "network_params": summary["params"],
                "ticket_params": summary["nonzero_params"], "density": 1.0, "accuracy": summary["test_accuracy"],
                "target_accuracy": summary["test_accuracy"], "wall_time_s": summary["run_seconds"],
                "device": summary["device"]}

    def _construct(self, unit: Unit) -> dict[str, Any]:
        from strongticket.construct import build, construction
        from strongticket.construct.distribution import distribution_for

        entry = self.config.construct[unit.index]
        target, shape, _ = self.target_module(unit.seed, entry)
        options: dict[str, Any] = {"seed": unit.seed, "strict": False, **entry.options}
        accepted = construction(entry.method).options
        if "input_shape" in accepted:
            options["input_shape"] = shape
        if "nonneg_input" in accepted:
            options.setdefault("nonneg_input", True)  # image pixels are in [0, 1]
        if isinstance(options.get("distribution"), str):
            options["distribution"] = distribution_for(options["distribution"], target)
        start = time.perf_counter()
        ticket = build(entry.method, target, **options)
        seconds = time.perf_counter() - start
        ticket.save(self.out / "work" / unit.id, overwrite=True, what="the ticket directory")
        prov = ticket.provenance
        return {"needs_training": False, "network_params": ticket.num_params, "ticket_params": ticket.num_kept,
                "density": ticket.density, **self._check_ticket(ticket), "random_width": prov.get("random_width"),
                "wall_time_s": seconds, "device": "cpu", "warnings": list(prov.get("warnings", []))}

    def _check_ticket(self, ticket: Any) -> dict[str, Any]:
        """Accuracy of the ticket and of its recorded target on the whole test split, the largest l_inf output
        error between them over the test images (float64), the largest found by an adversarial search from the
        first test images inside the set the bound covers, and the construction's certified bound over that set
        (:mod:`strongticket.verify`; l2 ball for the FC 2L tickets, l_inf box for CNN and L+1 tickets; both
        restricted to x >= 0 for images).

        One forward pass of each network over the test split, then a short ascent on a small batch: the
        ticket's random network is the expensive part."""
        from strongticket.verify.certified import certified_bound
        from strongticket.verify.measure import adversarial_error, input_shape, target_module
        from strongticket.verify.report import LINF_CERTIFIERS

        ds = self.dataset()
        x = ds.test_x.reshape((len(ds.test_x), *input_shape(ticket))).double()
        weights = ticket.random_weights()
        g = ticket.to_module(torch.float64, weights=weights).eval()
        f = target_module(ticket).eval()
        with torch.no_grad():
            gx = torch.cat([g(b) for b in x.split(500)])
            fx = torch.cat([f(b) for b in x.split(500)])
        certify = LINF_CERTIFIERS.get(ticket.provenance.get("method"))
        nonneg = bool(x.min() >= 0)
        if certify is not None:
            radius = float(x.abs().max())
            bound, norm, domain = certify(ticket, radius, f), "linf", "box_nonneg" if nonneg else "box"
        else:
            radius = float(x.reshape(len(x), -1).norm(dim=1).max())
            bound = certified_bound(ticket, f, radius=radius, nonneg_input=nonneg, weights=weights).bound
            norm, domain = "l2", "ball_nonneg" if nonneg else "ball"
        adversarial = adversarial_error(ticket, f, module=g, radius=radius, restarts=1, steps=ADVERSARIAL_STEPS,
                                        batch=ADVERSARIAL_BATCH, start=x[:ADVERSARIAL_BATCH], domain=domain,
                                        norm="linf").sup
        y = ds.test_y
        return {"accuracy": float((gx.argmax(1) == y).double().mean()),
                "target_accuracy": float((fx.argmax(1) == y).double().mean()),
                "error_measured": float((gx - fx).abs().max()), "error_adversarial": float(adversarial),
                "error_certified": float(bound),
                "certified_norm": norm}

    def _find(self, unit: Unit) -> dict[str, Any]:
        from strongticket.train.run import train_run

        entry = self.config.find[unit.index]
        cfg = self.config.find_run(entry, unit.density, unit.seed, self.pretrained(unit.seed))
        s = train_run(cfg, self.out / "work" / unit.id, data_dir=self.data_dir, device=self.device)
        return {"needs_training": True, "network_params": s["params"], "ticket_params": s["nonzero_params"],
                "density": s["density"], "accuracy": s["test_accuracy"], "wall_time_s": s["run_seconds"],
                "device": s["device"], "warnings": list(s.get("warnings", []))}


def _bias(run_dir: Path) -> bool:
    """Whether the run's model has biases (resolved in its config.json: the model's own default when unset)."""
    from safetensors import safe_open

    with safe_open(str(run_dir / "model.safetensors"), "pt") as f:
        return any(k.endswith(".bias") for k in f.keys())


def read_results(out: Path) -> list[dict[str, Any]]:
    """Every unit result in ``out/results``, sorted by unit name; a damaged file is a one-line error."""
    folder = out / "results"
    if not folder.is_dir():
        return []
    results = []
    for path in sorted(folder.glob("*.json")):
        r = read_json_object(path, InputError)
        missing = [k for k in RESULT_FIELDS if k not in r]
        if missing:
            raise InputError(f"{str(path)!r} is not a comparison result (missing {', '.join(missing)})")
        results.append(r)
    return results


def machine() -> dict[str, Any]:
    """The machine a comparison ran on (for the report)."""
    import os

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
