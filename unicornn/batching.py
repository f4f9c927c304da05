"""vmap rules of the two custom ops: ``torch.func.vmap`` adds a leading dimension V to some inputs.

Every unit of the recurrence is independent, so V copies of the problem are one problem with V
times the units: the vmapped dimension folds into the hidden axis (x (N, B, H) -> (N, B, V*H),
weight and c (H,) -> (V*H,), states likewise; an input without the dimension is expanded), one
launch computes all of them, and the results unfold again. The per-unit gradients dL/dw, dL/dc sum
over the batch only, never across copies, which folding into the batch axis would do. Lengths are
per batch row, so a vmapped ``lengths`` cannot fold: those calls run once per copy.
"""
import torch


def _fold(t, dim, size):
    """(..., H) with the vmapped dimension at ``dim`` (None: not vmapped) -> (..., size * H)."""
    if t is None:
        return None
    if dim is None:
        t = t.unsqueeze(-2).expand(*t.shape[:-1], size, t.shape[-1])
    else:
        t = t.movedim(dim, -2)
    return t.reshape(*t.shape[:-2], size * t.shape[-1])


def _unfold(t, size):
    """(..., size * H) -> (..., size, H) and the position of the vmapped dimension."""
    t = t.unflatten(-1, (size, -1))
    return t, t.dim() - 2


def _one_copy_at_a_time(op, info, in_dims, args):
    """The op once per copy (vmapped lengths), results stacked along a leading dimension."""
    results = []
    for i in range(info.batch_size):
        sliced = [a.select(d, i) if d is not None and a is not None else a for a, d in zip(args, in_dims)]
        results.append(op(*sliced))
    return tuple(torch.stack(parts) for parts in zip(*results)), (0,) * len(results[0])


def register_vmap_rules(forward_op, backward_op):
    @torch.library.register_vmap(forward_op)
    def _forward_vmap(info, in_dims, x, weight, c, initial, lengths, *constants):
        args = (x, weight, c, initial, lengths, *constants)
        if in_dims[4] is not None:
            return _one_copy_at_a_time(forward_op, info, in_dims, args)
        size = info.batch_size
        y, states, final = forward_op(*(_fold(t, d, size) for t, d in zip(args[:4], in_dims[:4])),
                                      lengths, *constants)
        outputs = [_unfold(t, size) for t in (y, states, final)]
        return tuple(t for t, _ in outputs), tuple(d for _, d in outputs)

    @torch.library.register_vmap(backward_op)
    def _backward_vmap(info, in_dims, x, weight, c, lengths, states, grad_y, grad_final, *constants):
        args = (x, weight, c, lengths, states, grad_y, grad_final, *constants)
        if in_dims[3] is not None:
            return _one_copy_at_a_time(backward_op, info, in_dims, args)
        size = info.batch_size
        # lengths (index 3) is unbatched here and stays as it is
        folded = [t if i == 3 else _fold(t, d, size) for i, (t, d) in enumerate(zip(args[:7], in_dims[:7]))]
        outputs = [_unfold(t, size) for t in backward_op(*folded, *constants)]
        return tuple(t for t, _ in outputs), tuple(d for _, d in outputs)
