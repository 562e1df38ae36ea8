"""What a pruning method sees of a run: :class:`RunContext` and the loop callbacks it installs.

:class:`RunContext` owns the side effects of a run: seeded networks and generators, training phases with
evaluation/checkpoint/early-stop callbacks, metric lines and the rewinding checkpoint. A phase that finished
before a kill is not retrained on resume (its final checkpoint is loaded), the phase that was running resumes
from its last checkpoint, and everything is recomputed from seeds, so a resumed run ends bit-identical to an
uninterrupted one on the same device, with the same ``metrics.jsonl``.

This module does not import the methods (they import it), so the trainer has no import cycle:
``config`` ← ``loop`` ← ``context`` ← ``methods`` ← ``run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.zoo import build_model
from strongticket.train.config import RunConfig, derive_seed
from strongticket.train.data import Dataset, epoch_batches
from strongticket.train.loop import Callback, EarlyStop, Trainer, evaluate
from strongticket.train.masking import (
    MaskedModel,
    Masks,
    density_report,
    init_regenerable,
    init_weights,
    prunable_names,
)
from strongticket.train.pretrained import load_pretrained
from strongticket.train.rundir import CheckpointError, RunDir


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------------------------------- callbacks


class EvalAndLog(Callback):
    """Evaluate on the test set every ``every`` epochs and at the end; write one metrics line each time."""

    def __init__(self, ctx: RunContext, phase: str, model: MaskedModel, every: int) -> None:
        self.ctx, self.phase, self.model, self.every = ctx, phase, model, every

    def _eval(self, trainer: Trainer) -> None:
        if trainer.last_eval.get("step") == trainer.step:
            return
        res = evaluate(self.model, self.ctx.data.test_x, self.ctx.data.test_y, amp=self.ctx.config.optim.amp)
        trainer.last_eval = {**res, "step": trainer.step}
        masks = self.model.masks
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        self.ctx.log({"event": "eval", "phase": self.phase, "step": trainer.step, "epoch": trainer.epoch,
                      "train_loss": trainer.train_loss, "test_loss": res["loss"], "test_accuracy": res["accuracy"],
                      "lr": trainer.lr, "density": kept / total if total else 1.0,
                      "time": time.perf_counter() - trainer.started})

    def on_epoch(self, trainer: Trainer) -> None:  # noqa: D102
        if trainer.epoch % self.every == 0:
            self._eval(trainer)

    def on_end(self, trainer: Trainer) -> None:  # noqa: D102
        self._eval(trainer)


class Checkpoint(Callback):
    """Save the phase's state every ``every`` epochs and, marked done, at the end."""

    def __init__(self, ctx: RunContext, phase: str, model: MaskedModel, every: int,
                 stateful: Sequence[Callback]) -> None:
        self.ctx, self.phase, self.model, self.every, self.stateful = ctx, phase, model, every, stateful

    def save(self, trainer: Trainer, done: bool) -> None:
        """Write the checkpoint (main process only)."""
        if not self.ctx.is_main:
            return
        tensors = {f"net.{k}": v for k, v in self.model.net.state_dict().items()}
        # the fixed masks only: a score mask is recomputed from the saved scores, and saving it as a fixed mask
        # would freeze entries the scores had only switched off for now (GEM-MINER's rounding)
        tensors |= {f"mask.{k}": v for k, v in self.model.fixed_masks.items()}
        tensors |= {f"score.{k}": v for k, v in self.model.scores.items()}
        opt = trainer.optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for i, st in opt["state"].items():
            for key, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"opt.{i}.{key}"] = v
                else:
                    scalars.setdefault(str(i), {})[key] = v
        state = {"phase": self.phase, "step": trainer.step, "epoch": trainer.epoch, "done": done,
                 "metrics_lines": self.ctx.n_lines, "optimizer_groups": opt["param_groups"],
                 "optimizer_scalars": scalars, "callbacks": [cb.state() for cb in self.stateful],
                 "last_eval": trainer.last_eval, "train_loss": _finite(trainer.train_loss),
                 "elapsed": self.ctx.phase_elapsed(self.phase)}
        self.ctx.rundir.save_checkpoint(self.phase, tensors, state)

    def on_epoch(self, trainer: Trainer) -> None:  # noqa: D102
        if trainer.epoch % self.every == 0 and trainer.step < trainer.total_steps and not trainer.stop:
            self.save(trainer, done=False)

    def on_end(self, trainer: Trainer) -> None:  # noqa: D102
        self.save(trainer, done=True)


class ProgressBar(Callback):
    """Advance a rich progress bar by one per step."""

    def __init__(self, bar: Any, phase: str) -> None:
        self.bar, self.phase, self.task = bar, phase, None

    def on_start(self, trainer: Trainer) -> None:  # noqa: D102
        self.task = self.bar.add_task(self.phase, total=trainer.total_steps, completed=trainer.step)

    def on_step(self, trainer: Trainer) -> None:  # noqa: D102
        self.bar.update(self.task, completed=trainer.step)

    def on_end(self, trainer: Trainer) -> None:  # noqa: D102
        self.bar.remove_task(self.task)


def _finite(x: float) -> float | None:
    return x if x == x and abs(x) != float("inf") else None


# ------------------------------------------------------------------------------------------- context


class RunContext:
    """What a method may use: seeded networks and generators, training phases, logging (see module doc)."""

    def __init__(self, config: RunConfig, data: Dataset, rundir: RunDir, *, rank: int = 0, world_size: int = 1,
                 bar: Any = None, note: Callable[[str], None] | None = None) -> None:
        self.config, self.data, self.rundir = config, data, rundir
        self.note = note
        self.rank, self.world_size, self.bar = rank, world_size, bar
        self.is_main = rank == 0
        self.device = data.device
        self.input_shape = data.input_shape
        # lines already on disk (a torn last line from a kill mid-write is removed first): on resume the run
        # replays from the start and log() skips every line it would write below this count
        self._existing = rundir.clean_metrics() if self.is_main else 0
        self.n_lines = 0
        self.extras: dict[str, Any] = {}
        self.phases: dict[str, dict[str, Any]] = {}
        self.collapsed: set[str] = set()
        self._phase_start: dict[str, float] = {}
        self._phase_prior: dict[str, float] = {}

    # randomness and networks ------------------------------------------------------------------
    def generator(self, stream: str) -> torch.Generator:
        """A CPU generator for the named stream, seeded from the run's seed."""
        return torch.Generator().manual_seed(derive_seed(self.config.seed, stream))

    def new_net(self, stream: str = "init") -> nn.Module:
        """A zoo network initialised from the ``stream`` generator on the CPU, then moved to the device.

        Built on the meta device first, so that no global random state is read or advanced.
        """
        m, c = self.config.model, self.input_shape
        with torch.device("meta"):
            net = build_model(m.model, num_classes=self.data.num_classes, in_channels=c[0], image_size=c[1],
                              width=m.width, bias=m.bias)
        net = net.to_empty(device="cpu")
        init_weights(net, m.init, self.generator(stream))
        if m.init_from is not None and stream == "init":
            transfer = load_pretrained(net, m.init_from)
            if "init_from" not in self.extras and self.note is not None and self.is_main:
                self.note(transfer.describe())
            self.extras["init_from"] = transfer.to_dict()
        return net.to(self.device)

    def record_random_network(self, net: nn.Module) -> None:
        """Draw ``net``'s parameters as a regenerable random network (the run's init law and seed) and record it
        in the summary as ``random_network``, so that a ticket found on it is a strong ticket
        (:func:`~strongticket.train.masking.init_regenerable`); a model no ``NetSpec`` describes keeps its
        generator init and records ``{"unsupported": reason}``."""
        try:
            record = init_regenerable(net, self.config.model.init, self.config.seed, self.input_shape).to_dict()
        except InputError as exc:
            record = {"unsupported": str(exc)}
        self.extras["random_network"] = record

    def prunable(self, net: nn.Module) -> list[str]:
        """State_dict names of ``net``'s prunable tensors under the run's ``prune_bias``/``prune_output``."""
        return prunable_names(net, prune_bias=self.config.prune.prune_bias,
                              prune_output=self.config.prune.prune_output)

    def score_data(self, n_batches: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n_batches`` training batches of a permutation drawn from the ``score`` stream."""
        g = self.generator("score")
        for i, idx in enumerate(epoch_batches(len(self.data.train_y), self.config.data.batch_size, g,
                                              device=self.device)):
            if i >= n_batches:
                return
            yield self.data.train_x[idx], self.data.train_y[idx]

    # logging -----------------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        """Append a metrics line (on resume, lines already on disk from the replayed part are kept)."""
        self.n_lines += 1
        if not self.is_main or self.n_lines <= self._existing:
            return
        self.rundir.append_metrics({k: (_finite(v) if isinstance(v, float) else v) for k, v in record.items()})
        self._existing = self.n_lines

    def _resume_metrics(self, n: int, phase: str, *, done: bool) -> None:
        """Set the line counter to ``n``, the count a checkpoint of ``phase`` recorded.

        A finished phase's lines, and every line after it, stay on disk: the phases that follow replay and
        skip them. Only an unfinished phase, the one being resumed (always the last with lines on disk), drops
        the lines it logged after its checkpoint, because training from that checkpoint logs them again.
        """
        self.n_lines = n
        if not self.is_main:
            return
        if self._existing < n:
            raise CheckpointError(f"metrics.jsonl has {self._existing} lines but the checkpoint of phase "
                                  f"{phase!r} counts {n}: the file was shortened; pass --overwrite to start over")
        if not done and self._existing > n:
            self.rundir.truncate_metrics(n)
            self._existing = n

    def log_masks(self, event: str, masks: Masks) -> None:
        """Log a mask's per-layer density report; a layer with nothing kept is recorded as collapsed."""
        rep = density_report(masks)
        self.collapsed |= set(rep["collapsed"])
        self.log({"event": "mask", "phase": event, "density": rep["density"], "kept": rep["kept"],
                  "prunable": rep["prunable"], "collapsed": rep["collapsed"],
                  "layers": {r["name"]: r["density"] for r in rep["layers"]}})

    def phase_elapsed(self, phase: str) -> float:
        """Seconds spent training ``phase``, over every (re)start."""
        now = time.perf_counter()
        return self._phase_prior.get(phase, 0.0) + now - self._phase_start.get(phase, now)

    # training ----------------------------------------------------------------------------------
    def train(self, phase: str, model: MaskedModel, *, trainable: list[torch.Tensor] | None = None,
              start_step: int = 0, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
        """Train ``model`` for one phase of ``optim.epochs`` epochs (from ``start_step``); return its final eval.

        A phase already finished in the run directory is loaded instead of trained; an interrupted one is
        resumed from its last checkpoint.
        """
        cfg = self.config
        if trainable is None:
            trainable = [p for p in model.parameters() if p.requires_grad]
        per_rank = cfg.data.batch_size // self.world_size
        if per_rank < 1 or cfg.data.batch_size % self.world_size:
            raise InputError(f"batch_size {cfg.data.batch_size} must be a multiple of the {self.world_size} processes")
        augment = cfg.data.augment or self.data.augment  # resolved by resolve_config; tests may skip it
        trainer = Trainer(model, self.data, cfg.optim, trainable, seed=cfg.seed, batch_size=per_rank,
                          augment=augment, step=start_step, rank=self.rank, world_size=self.world_size)
        if start_step >= trainer.total_steps:
            raise InputError(f"start step {start_step} (rewind_step) is beyond the {trainer.total_steps} steps "
                             "of a training phase")
        stateful: list[Callback] = []
        early = None
        if cfg.optim.early_stop_patience:
            early = EarlyStop(cfg.optim.early_stop_patience)
            stateful.append(early)
        ckpt = Checkpoint(self, phase, model, cfg.checkpoint_every, stateful)
        trainer.callbacks = [*callbacks, EvalAndLog(self, phase, model, cfg.eval_every), *stateful, ckpt]
        if self.bar is not None and self.is_main:
            trainer.callbacks.append(ProgressBar(self.bar, phase))

        loaded = self.rundir.load_checkpoint(phase)
        if loaded is not None:
            tensors, state = loaded
            self._load_into(model, trainer, tensors, state, stateful)
            self._phase_prior[phase] = state.get("elapsed", 0.0)
            self._resume_metrics(state["metrics_lines"], phase, done=state["done"])
            if not state["done"] and self.note is not None and self.is_main:
                self.note(f"resuming from {phase} epoch {state['epoch']} (step {state['step']})")
            if state["done"]:
                self.phases[phase] = {**state["last_eval"], "seconds": state.get("elapsed", 0.0),
                                      "steps": state["step"] - start_step}
                return self.phases[phase]
        else:
            # no checkpoint: the phase starts afresh, and whatever it logged before the kill is logged again
            self._resume_metrics(self.n_lines, phase, done=False)
        self._phase_start[phase] = time.perf_counter()
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            trainer.forward_model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        trainer.run()
        self.phases[phase] = {**trainer.last_eval, "seconds": self.phase_elapsed(phase),
                              "steps": trainer.step - start_step}
        _barrier(self.world_size)
        return self.phases[phase]

    @staticmethod
    def _load_into(model: MaskedModel, trainer: Trainer, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                   stateful: Sequence[Callback]) -> None:
        dev = trainer.data.device
        try:
            model.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            masks = {k[5:]: v for k, v in tensors.items() if k.startswith("mask.")}
            if masks:
                model.set_masks(masks)
            with torch.no_grad():
                for k, v in tensors.items():
                    if k.startswith("score."):
                        model.scores[k[6:]].copy_(v)
            opt_state: dict[int, dict[str, Any]] = {}
            for k, v in tensors.items():
                if k.startswith("opt."):
                    _, i, key = k.split(".", 2)
                    opt_state.setdefault(int(i), {})[key] = v.to(dev) if key != "step" else v
            for i, sc in state.get("optimizer_scalars", {}).items():
                opt_state.setdefault(int(i), {}).update(sc)
            trainer.optimizer.load_state_dict({"state": opt_state, "param_groups": state["optimizer_groups"]})
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"checkpoint of phase {state.get('phase')!r} does not fit the model: {exc}; "
                                  "pass --overwrite to start over") from None
        trainer.step = state["step"]
        trainer.last_eval = state.get("last_eval", {})
        trainer.train_loss = state.get("train_loss") or float("nan")
        for cb, st in zip(stateful, state.get("callbacks", [])):
            cb.load_state(st)

    # rewinding and controls --------------------------------------------------------------------
    def save_rewind(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Store the weights at the rewinding step."""
        if self.is_main:
            self.rundir.save_tensors("checkpoints/rewind.safetensors", state_dict)
        self._rewind = {k: v.detach().clone() for k, v in state_dict.items()}

    def load_rewind(self) -> dict[str, torch.Tensor]:
        """Return the weights saved at the rewinding step."""
        if getattr(self, "_rewind", None) is not None:
            return self._rewind
        sd = self.rundir.load_tensors("checkpoints/rewind.safetensors")
        if sd is None:
            raise CheckpointError("the rewinding checkpoint checkpoints/rewind.safetensors is missing; "
                                  "pass --overwrite to start over")
        return {k: v.to(self.device) for k, v in sd.items()}

    def reinit_control(self, masks: Masks) -> dict[str, Any]:
        """Train ``masks`` from a fresh random initialisation (the random-reinit control); record its accuracy."""
        model = MaskedModel(self.new_net("reinit"), masks)
        res = self.train("reinit", model)
        self.extras["reinit_test_accuracy"] = res.get("accuracy")
        return res
