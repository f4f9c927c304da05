"""Where the forward pass saves the state (the end of every chunk of ``ckpt_every`` steps, and the
last step) and where the backward pass restarts its reconstruction from a saved state: at a
sequence's own last step (the forward keeps that final state in every later chunk end, since a
sequence's state stays put past its length) and at every earlier chunk end."""


def num_chunks(n_steps, ckpt_every):
    return -(-n_steps // ckpt_every)


def is_chunk_end(t, n_steps, ckpt_every):
    return (t + 1) % ckpt_every == 0 or t == n_steps - 1
