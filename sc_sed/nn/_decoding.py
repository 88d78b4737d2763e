"""Batched autoregressive decoding of :class:`~sc_sed.nn.ARDecoder`: the loop and its state.

The loop owns its steps: it calls the decoder's public parts (``embed``, ``blocks``, ``norm``
and the heads), never private methods. Two ways to run it:

* **dynamic** (default, fastest on a CPU): the KV cache grows with the rows actually
  generated, and finished rows leave the batch (compaction) so later steps do less work;
* **static shapes**: fixed batch slots (finished rows are masked, never removed), a KV
  cache preallocated at ``max_length`` positions and the step position kept in a device
  tensor, so one decoding step has fixed shapes and addresses. On CUDA that step can be
  captured once in a CUDA graph and replayed (one launch instead of hundreds of small
  kernels per step).

Nothing inside the loop asks the device for a value except the "every row has finished?"
check, made once every ``check_every`` steps (and on a CPU, where it is free, every step).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch

from .._vocab import TokenVocabulary
from ._attention import KVCache

if TYPE_CHECKING:
    from ._decoder import ARDecoder

#: Steps between "all rows finished?" checks off the CPU (each check is a host-device sync).
GPU_CHECK_EVERY = 16


def decode(
    decoder: ARDecoder,
    z: torch.Tensor,
    max_length: int,
    *,
    allowed: torch.Tensor | None,
    generator: torch.Generator | None,
    temperature: float,
    greedy: bool,
    static_shapes: bool = False,
    cuda_graph: bool = False,
    autocast_dtype: torch.dtype | None = None,
    check_every: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the decoding loop; see :meth:`ARDecoder.generate` for the arguments."""
    check_every = _check_options(z.device, cuda_graph, check_every)
    static = static_shapes or cuda_graph
    with _autocast(z.device, autocast_dtype):
        state = _DecodeState(decoder, z, max_length, allowed, static, autocast_dtype)
        step_fn = _CapturedStep(decoder, state) if cuda_graph else None
        vocab = state.vocab
        for step in range(max_length):
            h = step_fn() if step_fn is not None else state.hidden(decoder, step)
            next_id = decoder.index_head.sample(
                h, state.last, tables=state.tables, context_terms=state.terms.index,
                generator=generator, temperature=temperature, greedy=greedy,
            )  # fmt: skip
            params = decoder.value_params(h, next_id.clamp_max(vocab.end - 1), state.terms)
            next_value = decoder.value_head.sample(params, generator=generator, greedy=greedy)
            state.record(next_id, next_value, step)
            if (step + 1) % check_every == 0 and state.finished_or_compacted():
                break
    return state.result()


def _check_options(device, cuda_graph, check_every) -> int:
    """Validate the decoding options; return the number of steps between finish checks."""
    if cuda_graph and device.type != "cuda":
        msg = f"cuda_graph=True needs latents on a CUDA device, got {device}."
        raise ValueError(msg)
    if check_every is None:
        check_every = 1 if device.type == "cpu" else GPU_CHECK_EVERY
    if int(check_every) < 1:
        msg = f"check_every must be a positive integer, got {check_every!r}."
        raise ValueError(msg)
    return int(check_every)


def cached_step(decoder: ARDecoder, state: _DecodeState, step: int) -> torch.Tensor:
    """One step on the dynamic path: embed each active row's newest token, extend the caches.

    Returns the ``(rows, n_hidden)`` hidden states of those tokens.
    """
    steps = torch.full((1,), step, device=state.input_index.device)  # broadcast over rows
    x = decoder.embed(state.input_index, state.input_value, steps, state.z_in).unsqueeze(1)
    for block, cache, kv in zip(decoder.blocks, state.caches, state.memory_kv, strict=True):
        x = block(x, memory_kv=kv, cache=cache)
    return decoder.norm(x)[:, 0]


def static_step(decoder: ARDecoder, state: _DecodeState) -> torch.Tensor:
    """One step with fixed shapes: every tensor read is a buffer of ``state`` (graph-safe)."""
    steps = state.position  # (1,), broadcast over rows
    x = decoder.embed(state.input_index, state.input_value, steps, state.z_in).unsqueeze(1)
    key_mask = (state.key_positions <= state.position).unsqueeze(0)
    for block, cache, kv in zip(decoder.blocks, state.caches, state.memory_kv, strict=True):
        x = block(x, memory_kv=kv, cache=cache, cache_position=state.position, key_mask=key_mask)
    return decoder.norm(x)[:, 0]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context on ``device`` (nothing when ``dtype`` is None).

    The autocast weight cache is off: it must not be used while a CUDA graph is captured.
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)


class _DecodeState:
    """Book-keeping of batched decoding: outputs, finished rows, caches, compaction."""

    def __init__(
        self,
        decoder: ARDecoder,
        z: torch.Tensor,
        max_length: int,
        allowed: torch.Tensor | None,
        static: bool,
        cache_dtype: torch.dtype | None,
    ):
        n_rows, device = z.shape[0], z.device
        self.vocab = TokenVocabulary(decoder.n_features)
        self.static = static
        self.tables = decoder.index_head.prepare(allowed, device)
        memory = decoder.make_memory(z)
        self.memory_kv = [block.cross_attn.project_kv(memory) for block in decoder.blocks]
        self.z_in = decoder.latent_input(z)
        self.terms = decoder.latent_terms(z)  # per row, kept through compaction
        self.caches = [self._cache(decoder, n_rows, max_length, cache_dtype, device)
                       for _ in decoder.blocks]  # fmt: skip
        self.rows = torch.arange(n_rows, device=device)  # original row of each active row
        self.done = torch.zeros(n_rows, dtype=torch.bool, device=device)
        self.last = torch.full((n_rows,), -1, dtype=torch.long, device=device)
        self.input_index = torch.full((n_rows,), self.vocab.start, dtype=torch.long, device=device)
        self.input_value = torch.zeros(n_rows, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)  # static path
        self.key_positions = torch.arange(max_length, device=device)
        self.generated_index = torch.full(
            (n_rows, max_length), self.vocab.pad, dtype=torch.long, device=device
        )
        self.generated_value = torch.zeros((n_rows, max_length), device=device)
        self.n_nonzero = torch.zeros(n_rows, dtype=torch.long, device=device)

    def _cache(self, decoder, n_rows, max_length, dtype, device) -> KVCache:
        attn = decoder.blocks[0].self_attn
        if not self.static:  # allocated on the first write, grows by doubling
            return KVCache(n_rows, attn.n_heads, attn.head_dim, max_length)
        dtype = dtype or decoder.norm.weight.dtype
        return KVCache(
            n_rows, attn.n_heads, attn.head_dim, max_length, static=True, device=device, dtype=dtype
        )

    def hidden(self, decoder: ARDecoder, step: int) -> torch.Tensor:
        """Hidden state of the newest token of every active row."""
        return static_step(decoder, self) if self.static else cached_step(decoder, self, step)

    def record(self, next_id: torch.Tensor, next_value: torch.Tensor, step: int) -> None:
        """Write one step's draws (device ops only: no host-device sync)."""
        # Masked writes instead of boolean indexing; finished rows keep their padding.
        emit = ~self.done & self.vocab.is_feature(next_id)
        self.done |= ~self.vocab.is_feature(next_id)
        self.generated_index[self.rows, step] = torch.where(emit, next_id, self.vocab.pad)
        self.generated_value[self.rows, step] = torch.where(
            emit, next_value.to(self.generated_value.dtype), 0.0
        )
        self.n_nonzero[self.rows] += emit.long()
        self.last = torch.where(emit, next_id, self.last)
        input_index = next_id.clamp_max(self.vocab.end - 1)
        input_value = next_value.to(self.input_value.dtype)
        if self.static:  # fixed addresses: the captured step reads these buffers
            self.input_index.copy_(input_index)
            self.input_value.copy_(input_value)
            self.position += 1
            return
        self.input_index, self.input_value = input_index, input_value

    def finished_or_compacted(self) -> bool:
        """Return True when every row has finished (one host-device sync).

        On the dynamic path, finished rows also leave the batch once they are a quarter of
        it (so compaction happens at most O(log batch) times).
        """
        n_done = int(self.done.sum())
        if n_done == self.done.numel():
            return True
        if not self.static and 4 * n_done >= self.done.numel():
            self._compact(~self.done)
        return False

    def _compact(self, keep: torch.Tensor) -> None:
        """Drop finished rows from every per-row tensor."""
        kept_rows = keep.nonzero().squeeze(1)
        for cache in self.caches:
            cache.select(kept_rows)
        self.memory_kv = [
            (k.index_select(0, kept_rows), v.index_select(0, kept_rows)) for k, v in self.memory_kv
        ]
        per_row = (
            "rows",
            "done",
            "last",
            "input_index",
            "input_value",
            "z_in",
        )
        for name in per_row:
            setattr(self, name, getattr(self, name).index_select(0, kept_rows))
        index, features = self.terms
        self.terms = type(self.terms)(
            None if index is None else tuple(t.index_select(0, kept_rows) for t in index),
            None if features is None else features.index_select(0, kept_rows),
        )

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(index, value, n_nonzero)`` trimmed to the longest generated row."""
        length = int(self.n_nonzero.max()) if self.n_nonzero.numel() else 0
        return self.generated_index[:, :length], self.generated_value[:, :length], self.n_nonzero


class _CapturedStep:
    """One static decoding step captured in a CUDA graph, replayed at every step."""

    def __init__(self, decoder: ARDecoder, state: _DecodeState):
        self.state = state
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (lazy initialisation) outside the capture
            static_step(decoder, state)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.hidden = static_step(decoder, state)

    def __call__(self) -> torch.Tensor:
        self.graph.replay()
        return self.hidden
