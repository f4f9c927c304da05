"""The epoch loop every experiment shares, with the paper's model selection (report the test value at
the epoch of the best validation value).

Resuming goes through the same code path as a fresh start: the script rebuilds data and model from
the saved arguments, then ``fit`` restores model, optimiser, lr schedule, RNG states, batch order,
epoch and best-so-far from the last checkpoint (nanoGPT's pattern), so an interrupted run continues
exactly as an uninterrupted one would have.
"""
import bisect
import collections
import itertools
import math
import time

import torch
from tqdm import tqdm

from . import cpu_memory, folder_lock, references
from .run_folder import RunFolder
from .seeding import restore_rng_states, rng_states

# On CUDA, checking the loss costs a device sync, so it is checked every this many steps (and at the
# end of every epoch); the checkpoint of the last good epoch is never overwritten either way.
FINITE_CHECK_EVERY_CUDA = 50


def pick_device(name=None):
    """torch.device for a validated --device value (None: cuda if available)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Diverged(SystemExit):
    """The loss or a validation value became NaN or infinite: the run stops with this message."""


def _diverged(run, what, epoch, suspects, best, args, metric):
    run.append_history("diverged", epoch=epoch, what=what)
    run.write_summary(summary_of(best, metric, args, status="diverged", diverged_in_epoch=epoch))
    kept = f"the checkpoint after epoch {epoch - 1} is kept" if epoch > 1 else "no epoch finished"
    return Diverged(f"stopped: {what} became non-finite in epoch {epoch}. The usual causes are a too "
                    f"large {', '.join(suspects)}; start a new run with smaller values ({kept} in "
                    f"{run.path}).")


def summary_of(best, metric, args, status, **extra):
    """summary.json: the test value at the best valid epoch; status is "finished" or "diverged" (a
    run without summary.json is unfinished)."""
    return {"status": status, "epochs": args.epochs, "best_epoch": best["epoch"],
            f"best_valid_{metric.name}": best["valid"], f"test_{metric.name}": best["test"], **extra}


def lr_scheduler(optimizer, milestones):
    """The paper's schedule: lr divided by 10 after each epoch in ``milestones`` (one step per epoch)."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), gamma=0.1)


def set_milestones(scheduler, milestones):
    """Replace a MultiStepLR's milestones (a resumed run may have a longer schedule) and set the lr
    its closed form gives after ``last_epoch`` epochs: base lr x gamma^(milestones passed), so a drop
    that the new schedule places in the past still takes effect."""
    scheduler.milestones = collections.Counter(milestones)
    passed = bisect.bisect_right(sorted(milestones), scheduler.last_epoch)
    for group, base_lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base_lr * scheduler.gamma ** passed


def fit(args, model, train_batches, loss_fn, evaluate, task, lr_milestones=(), on_epoch=None,
        suspects=("--lr", "--dt", "--alpha")):
    """Train with Adam (lr = args.lr, divided by 10 after each epoch in ``lr_milestones``) until
    args.epochs, evaluating ``evaluate("valid")`` and ``evaluate("test")`` after every epoch and
    checkpointing; ``on_epoch(row)`` sees each epoch's log row (sweeps report it to Ray Tune).
    ``task`` (a repro.experiment.Task) gives the metric and the reference values. Returns the
    summary: the test value at the epoch of the best valid value. The run folder is locked while it
    trains: a second process on it is refused (folder_lock)."""
    run = RunFolder(args.out_dir)
    with folder_lock.hold(run.path, "run folder"):
        refuse_a_run_started_meanwhile(run, args)
        return _fit_locked(run, args, model, train_batches, loss_fn, evaluate, task, lr_milestones,
                           on_epoch, suspects)


def refuse_a_run_started_meanwhile(run, args):
    """A new run whose folder got a run between the flag checks and the lock (two processes
    started at once with one --out-dir; the other one is done or gone now) must not take it over."""
    held = None if getattr(args, "resume", None) else run.describe_run()
    if held:
        raise SystemExit(f"{run.path} already holds a run ({held}), started by another process; "
                         f"continue it with --resume {run.path}, or choose another --out-dir")


def _fit_locked(run, args, model, train_batches, loss_fn, evaluate, task, lr_milestones, on_epoch,
                suspects):
    metric = task.metric
    from torch.utils.tensorboard import SummaryWriter  # imports TensorBoard: only when training

    checkpoint = run.load_checkpoint()
    start_epoch = checkpoint["epoch"] if checkpoint else 0
    if args.epochs < start_epoch:
        raise SystemExit(f"--epochs {args.epochs}: {run.path} has already trained {start_epoch} "
                         f"epochs; pass --epochs {start_epoch} or more")
    run.write_args(args)
    device = next(model.parameters()).device
    if device.type == "cpu":
        cpu_memory.reuse_freed_memory()
    run.append_history("resume" if checkpoint else "start", after_epoch=start_epoch, epochs=args.epochs,
                       device=str(device))

    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = lr_scheduler(optimizer, lr_milestones)
    rows, best = [], {"valid": None, "test": None, "epoch": None}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        set_milestones(scheduler, lr_milestones)  # recomputed for today's --epochs
        train_batches.load_state_dict(checkpoint["batches"])
        restore_rng_states(checkpoint["rng"])
        rows, best = checkpoint["log"], checkpoint["best"]
        print(f"resuming {run.path} after epoch {start_epoch} of {args.epochs}")
    else:
        print(f"run folder: {run.path}")

    writer = SummaryWriter(str(run.path), purge_step=start_epoch + 1)  # drops events of lost epochs
    n_batches = len(train_batches) if args.max_train_batches is None else \
        min(len(train_batches), args.max_train_batches)
    check_every = FINITE_CHECK_EVERY_CUDA if device.type == "cuda" else 1
    for epoch in range(start_epoch + 1, args.epochs + 1):
        model.train()
        started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, all_finite = torch.zeros((), device=device), torch.ones((), dtype=torch.bool, device=device)
        bar = tqdm(itertools.islice(train_batches, n_batches), total=n_batches, desc=f"epoch {epoch}",
                   leave=False, disable=args.no_progress, dynamic_ncols=True)
        for step, (inputs, targets) in enumerate(bar, 1):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            all_finite &= torch.isfinite(loss.detach())
            if (step % check_every == 0 or step == n_batches) and not all_finite.item():
                bar.close()
                raise _diverged(run, f"the training loss (by step {step} of {n_batches})", epoch,
                                suspects, best, args, metric)
        bar.close()
        scheduler.step()
        trained = time.perf_counter()
        valid, test = evaluate("valid"), evaluate("test")
        if not (math.isfinite(valid) and math.isfinite(test)):
            raise _diverged(run, f"the valid/test {metric.name} ({valid}, {test})", epoch, suspects,
                            best, args, metric)
        seconds = time.perf_counter() - started
        if metric.better(valid, best["valid"]):
            best = {"valid": valid, "test": test, "epoch": epoch}
            run.save_best_model(model)
        row = {"epoch": epoch, "train_loss": loss_sum.item() / n_batches,
               f"valid_{metric.name}": valid, f"test_{metric.name}": test, "lr": lr,
               "seconds": round(seconds, 2), "train_seconds": round(trained - started, 2),
               "eval_seconds": round(seconds - (trained - started), 2)}
        rows.append(row)
        print(f"epoch {epoch:4d}  loss {row['train_loss']:.4f}  valid {metric.show(valid)}  "
              f"test {metric.show(test)}  lr {lr:.3g}  {seconds:.1f}s", flush=True)
        run.write_log(rows)
        run.save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(),
                             "batches": train_batches.state_dict(), "rng": rng_states(),
                             "epoch": epoch, "best": best, "log": rows})
        for tag, value in (("loss/train", row["train_loss"]), (f"{metric.name}/valid", valid),
                           (f"{metric.name}/test", test), ("lr", lr), ("seconds_per_epoch", seconds)):
            writer.add_scalar(tag, value, epoch)
        writer.flush()
        if on_epoch is not None:
            on_epoch(row)
    writer.close()

    summary = summary_of(best, metric, args, status="finished")
    run.write_summary(summary)
    run.append_history("finished", epochs=args.epochs)
    print(f"final test {metric.name}: {metric.show(best['test'])} at the best validation epoch "
          f"({best['epoch']}, valid {metric.show(best['valid'])}); "
          f"{references.describe(task.reference, metric)}")
    return summary
