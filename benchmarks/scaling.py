"""Scaling benchmark: SED's cost tracks the non-zeros, a dense DDPM's tracks D (DESIGN §5).

Rows have exactly ``--n-nonzero`` non-zeros at random feature ids among D; for each D the
script times, in one process and interleaved (repeats outermost, then D, then methods),
the median over ``--repeats`` calls after ``--warmup`` untimed rounds:

* SED autoencoder training step (forward, backward, gradient clipping, AdamW step) with
  the flat and with the factorised index head;
* SED latent-diffusion training step (latent size fixed) and the dense DDPM's training
  step on all D features (same MLP U-Net widths, same loss code, EMA update included);
* generation per row: SED latent sampling (``--n-steps`` DDIM steps), SED decoding of
  exactly ``--n-nonzero`` pairs with and without the KV cache, and dense DDPM sampling with
  the same number of diffusion steps (back-transform and CSR conversion included);
* the extra peak memory of each call (see ``benchmarks/_common.py``).

Untrained networks would stop decoding early, so the decoder is timed on a copy whose
index-head output weights are zero and whose biases favour the smallest valid feature id
and forbid END: every row then emits ids 0, 1, 2, … for exactly ``--n-nonzero`` steps
(checked). Only which ids win changes; the work per step is that of the real decoder.

Run ``python benchmarks/scaling.py --help``; results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PeakMemory,
    environment,
    format_table,
    median,
    resolve_device,
    timed,
    write_json,
)

from sc_sed.baselines import DenseDiffusionModule  # noqa: E402
from sc_sed.baselines._transform import to_counts  # noqa: E402
from sc_sed.data import csr_to_tokens, pairs_to_csr  # noqa: E402
from sc_sed.module import TOKENS_INDEX_KEY, TOKENS_VALUE_KEY, LatentDiffusion, SEDModule  # noqa: E402
from sc_sed.nn import FlatIndexHead  # noqa: E402

TARGET_SUM = 1e4
STEP_METHODS = ("sed_ae_flat", "sed_ae_factorised", "sed_diffusion", "dense_step")
GEN_METHODS = ("sed_latents", "sed_decode_cached", "sed_decode_uncached", "dense_generate")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--smoke`` overrides sizes for a seconds-long check)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-nonzero", type=int, default=256, help="non-zeros per row")
    p.add_argument(
        "--features", type=int, nargs="+", default=[1000, 2000, 4000, 8000, 16000, 32000]
    )
    p.add_argument("--batch-size", type=int, default=32, help="rows per training step")
    p.add_argument("--gen-batch-size", type=int, default=4, help="rows generated per call")
    p.add_argument("--n-steps", type=int, default=50, help="diffusion sampling steps (both models)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds before the repeats")
    p.add_argument(
        "--flat-max-features",
        type=int,
        default=16000,
        help="largest D for the flat (O(D) per token) head; its logits need ~B*L*D*4 bytes several times",
    )
    p.add_argument(
        "--uncached-features",
        type=int,
        nargs="*",
        default=None,
        help="D values at which to time uncached decoding (default: smallest and largest)",
    )
    p.add_argument("--n-hidden", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--n-ff", type=int, default=256)
    p.add_argument("--n-latent", type=int, default=64)
    p.add_argument("--denoiser-widths", type=int, nargs="+", default=[512, 512, 256, 128])
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1 on CPU: stable timings on a shared machine)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip peak-memory measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/scaling.json")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat: seconds")
    args = p.parse_args(argv)
    if args.smoke:
        args.features, args.n_nonzero, args.repeats, args.warmup = [300, 600], 16, 1, 1
        args.batch_size, args.gen_batch_size, args.n_steps = 4, 2, 2
        args.n_hidden, args.n_ff, args.n_latent, args.denoiser_widths = 32, 64, 16, [64, 32]
    if min(args.features) < args.n_nonzero:
        p.error(f"every --features value must be >= --n-nonzero ({args.n_nonzero}).")
    if args.uncached_features is None:
        args.uncached_features = sorted({min(args.features), max(args.features)})
    return args


def random_rows(
    n_rows: int, n_features: int, n_nonzero: int, rng: np.random.Generator
) -> sp.csr_matrix:
    """CSR rows with exactly ``n_nonzero`` counts ≥ 1 at random feature ids."""
    cols = np.sort(
        np.stack([rng.choice(n_features, n_nonzero, replace=False) for _ in range(n_rows)]), axis=1
    )
    vals = rng.integers(1, 30, size=(n_rows, n_nonzero)).astype(np.float32)
    indptr = np.arange(0, n_rows * n_nonzero + 1, n_nonzero)
    return sp.csr_matrix((vals.ravel(), cols.ravel(), indptr), shape=(n_rows, n_features))


def decode_uncached(
    decoder, z: torch.Tensor, max_length: int, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decoding without a KV cache: the whole prefix through the forward pass at every step.

    The O(length^2) loop the cache replaces, timed for the speed-up only (the tests compare
    the cached loop with the same reference).
    """
    vocab, n = decoder.vocab, z.shape[0]
    tables = decoder.index_head.prepare(None, z.device)
    terms = decoder.latent_terms(z)
    index = torch.full((n, 1), vocab.start, dtype=torch.long, device=z.device)
    value = torch.zeros(n, 1, device=z.device)
    last = torch.full((n,), -1, dtype=torch.long, device=z.device)
    for _ in range(max_length):
        h = decoder(z, index, value)[:, -1]
        next_id = decoder.index_head.sample(
            h, last, tables=tables, context_terms=terms.index, generator=generator
        )
        params = decoder.value_params(h, next_id.clamp_max(vocab.end - 1), terms)
        next_value = decoder.value_head.sample(params, generator=generator).float()
        last = torch.where(vocab.is_feature(next_id), next_id, last)
        index = torch.cat([index, next_id.clamp_max(vocab.end - 1)[:, None]], dim=1)
        value = torch.cat([value, next_value[:, None]], dim=1)
    emitted = vocab.is_feature(index[:, 1:])
    return torch.where(emitted, index[:, 1:], vocab.pad), value[:, 1:], emitted.sum(1)


def force_full_length(module: SEDModule, *, gap: float = 100.0) -> SEDModule:
    """Copy whose decoder emits ids 0, 1, 2, … and never END before ``max_length``.

    The hazard index head's output weights are zeroed and its biases set to ``+gap``, so
    the first valid id is chosen with probability ``1 - exp(-gap)`` (END = no id chosen
    is practically impossible). The arithmetic per step is unchanged.
    """
    forced = copy.deepcopy(module)
    head = forced.decoder.index_head
    flat = isinstance(head, FlatIndexHead)
    layers = [head.proj] if flat else [head.block_proj, head.offset_proj[-1]]
    if flat:  # the latent's terms on the logits: their per-feature (and block) weights
        out = head.context_proj
        context = [out[-1].weight if isinstance(out, torch.nn.Sequential) else out.weight]
    else:
        context = [head.context_block.weight, head.context_offset]
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            layer.bias.fill_(gap)
        for weight in context:
            weight.zero_()
    return forced


def _train_step(
    module: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], params: list, opt, after=None
) -> Callable[[], None]:
    def step() -> None:
        module.train()  # generation calls switch the same module to eval mode
        loss_fn().backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)  # as the training plans (gradient_clip_val=1)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if after is not None:
            after()

    return step


def _autoencoder_step(module: SEDModule, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    params = [p for n, p in module.named_parameters() if n.startswith(("encoder.", "decoder."))]
    opt = torch.optim.AdamW(params, lr=1e-4)
    return _train_step(module, lambda: module(batch)[2].loss, params, opt)


def _diffusion_step(
    module: LatentDiffusion, z0: torch.Tensor, cond: torch.Tensor
) -> Callable[[], None]:
    params = list(module.denoiser.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    return _train_step(
        module,
        lambda: module.loss(z0, cond),
        params,
        opt,
        lambda: module.update_ema(0.999),
    )


def _dense_input(rows: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """Standardised log-normalised dense rows, as the dense DDPM trains on."""
    lib = np.asarray(rows.sum(axis=1)).ravel()
    x = np.log1p(rows.multiply(TARGET_SUM / lib[:, None]).toarray())
    x = (x - x.mean(0)) / np.clip(x.std(0), 1e-4, None)
    return torch.as_tensor(x, dtype=torch.float32, device=device)


def _sed_module(d: int, head: str, args: argparse.Namespace, device: torch.device) -> SEDModule:
    return SEDModule(
        d, args.n_nonzero, n_latent=args.n_latent, n_hidden=args.n_hidden, n_layers=args.n_layers,
        n_heads=args.n_heads, n_ff=args.n_ff, index_head=head, denoiser_widths=args.denoiser_widths,
    ).to(device)  # fmt: skip


def _param_mb(module: torch.nn.Module, prefixes: tuple[str, ...] = ("",)) -> float:
    n = sum(
        p.numel() * p.element_size()
        for name, p in module.named_parameters()
        if name.startswith(prefixes)
    )
    return n / 2**20


def build_cases(
    d: int, args: argparse.Namespace, device: torch.device, rng: np.random.Generator
) -> dict[str, Any]:
    """Callables (one step or one generation call each) and sizes for one D."""
    rows = random_rows(args.batch_size, d, args.n_nonzero, rng)
    tokens = csr_to_tokens(rows, device=device)
    batch = {TOKENS_INDEX_KEY: tokens.index, TOKENS_VALUE_KEY: tokens.value}
    fact = _sed_module(d, "factorised", args, device)
    flat = _sed_module(d, "flat", args, device) if d <= args.flat_max_features else None
    dense = DenseDiffusionModule(d, widths=args.denoiser_widths).to(device)
    no_cond = torch.zeros((args.batch_size, 0), dtype=torch.long, device=device)
    z0 = torch.randn(args.batch_size, args.n_latent, device=device)
    calls = {"sed_ae_flat": _autoencoder_step(flat, batch)} if flat is not None else {}
    calls.update(
        sed_ae_factorised=_autoencoder_step(fact, batch),
        sed_diffusion=_diffusion_step(fact.diffusion, z0, no_cond),
        dense_step=_diffusion_step(dense, _dense_input(rows, device), no_cond),
    )
    calls.update(_generation_calls(d, fact, dense, args, device, rng))
    sizes = {
        "sed_autoencoder_flat": None if flat is None else _param_mb(flat, ("encoder.", "decoder.")),
        "sed_autoencoder_factorised": _param_mb(fact, ("encoder.", "decoder.")),
        "sed_denoiser": _param_mb(fact.diffusion.denoiser),
        "dense_denoiser": _param_mb(dense.denoiser),
    }
    return {"calls": calls, "param_mb": sizes}


def _generation_calls(
    d, fact: SEDModule, dense: DenseDiffusionModule, args, device, rng
) -> dict[str, Callable]:
    g, n = torch.Generator(device=device), args.gen_batch_size
    cond = torch.zeros((n, 0), dtype=torch.long, device=device)
    forced = force_full_length(fact).eval()
    z = torch.randn(n, args.n_latent, device=device)
    library = torch.as_tensor(rng.integers(500, 5000, size=n), dtype=torch.float32, device=device)

    @torch.inference_mode()
    def latents() -> None:
        fact.eval().diffusion.sample(cond, n_steps=args.n_steps, generator=g.manual_seed(0))

    def decode(use_cache: bool) -> Callable[[], None]:
        @torch.inference_mode()
        def call() -> None:
            if use_cache:
                index, value, nnz = forced.decode(
                    z, generator=g.manual_seed(0), max_length=args.n_nonzero
                )
            else:
                index, value, nnz = decode_uncached(
                    forced.decoder, z, args.n_nonzero, generator=g.manual_seed(0)
                )
            if int(nnz.min()) != args.n_nonzero:
                msg = f"forced decoding emitted {int(nnz.min())} < {args.n_nonzero} pairs; timings would not compare."
                raise RuntimeError(msg)
            pairs_to_csr(index, value, d)

        return call

    @torch.inference_mode()
    def dense_generate() -> None:
        y = dense.eval().sample(cond, n_steps=args.n_steps, generator=g.manual_seed(0))
        sp.csr_matrix(to_counts(y, library, target_sum=TARGET_SUM).cpu().numpy())

    calls = {
        "sed_latents": latents,
        "sed_decode_cached": decode(True),
        "dense_generate": dense_generate,
    }
    if d in args.uncached_features:
        calls["sed_decode_uncached"] = decode(False)
    return calls


def measure(
    cases: dict[int, dict], args: argparse.Namespace, device: torch.device
) -> dict[int, dict]:
    """Interleaved timings ``{D: {method: [seconds, ...]}}`` (repeats, then D, then methods)."""
    times = {d: {m: [] for m in c["calls"]} for d, c in cases.items()}
    for r in range(args.warmup + args.repeats):
        print(
            f"round {r + 1}/{args.warmup + args.repeats}{' (warm-up)' if r < args.warmup else ''}",
            flush=True,
        )
        for d, case in cases.items():
            for method, fn in case["calls"].items():
                seconds = timed(fn, device)
                if r >= args.warmup:
                    times[d][method].append(seconds)
    return times


def measure_memory(cases: dict[int, dict], device: torch.device) -> tuple[dict[int, dict], str]:
    """Extra peak memory (MiB) of one more call of each method, after the timings.

    Kept apart from the timed rounds because the CPU method changes allocator settings.
    """
    print("memory round", flush=True)
    memory = PeakMemory(device)
    peaks = {
        d: {m: memory.run(fn)[1] for m, fn in case["calls"].items()} for d, case in cases.items()
    }
    memory.close()
    return peaks, memory.method


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def summarise_row(
    d: int, m: dict[str, float], base: dict[str, float], n_gen: int
) -> dict[str, Any]:
    """Per-D timings (s, ms per generated row) and the ratios of the report."""
    ms = {k: None if m.get(k) is None else 1e3 * m[k] / n_gen for k in GEN_METHODS}
    sed_step = m["sed_ae_factorised"] + m["sed_diffusion"]
    sed_gen = ms["sed_latents"] + ms["sed_decode_cached"]
    return {
        "n_features": d,
        **{f"{k}_s": m.get(k) for k in STEP_METHODS},
        "sed_step_s": sed_step,
        "sed_ae_flat_vs_smallest": _ratio(m.get("sed_ae_flat"), base.get("sed_ae_flat")),
        "sed_ae_factorised_vs_smallest": _ratio(m["sed_ae_factorised"], base["sed_ae_factorised"]),
        "sed_diffusion_vs_smallest": _ratio(m["sed_diffusion"], base["sed_diffusion"]),
        "dense_step_vs_smallest": _ratio(m["dense_step"], base["dense_step"]),
        "dense_over_sed_step": _ratio(m["dense_step"], sed_step),
        "dense_over_sed_ae": _ratio(m["dense_step"], m["sed_ae_factorised"]),
        "dense_over_sed_diffusion": _ratio(m["dense_step"], m["sed_diffusion"]),
        **{f"{k}_ms_per_row": v for k, v in ms.items()},
        "sed_generate_ms_per_row": sed_gen,
        "dense_over_sed_generate": _ratio(ms["dense_generate"], sed_gen),
        "kv_cache_speedup": _ratio(ms["sed_decode_uncached"], ms["sed_decode_cached"]),
    }


def _target(
    name, value, threshold, *, above: bool, at_setting: bool, detail: str, info: bool = False
) -> dict:
    passed = None if value is None else bool(value >= threshold if above else value < threshold)
    return {"name": name, "value": value, "threshold": threshold, "passed": passed, "info": info,
            "at_target_setting": at_setting, "detail": detail}  # fmt: skip


def check_targets(rows: list[dict], peaks: dict, n_nonzero: int) -> list[dict]:
    """DESIGN §5 targets at D = 1k, 16k and 32k (else: smallest, closest to 16k, largest).

    ``at_target_setting`` is False when those exact D (or 256 non-zeros) were not run.
    """
    by_d = {r["n_features"]: r for r in rows}
    lo = 1000 if 1000 in by_d else min(by_d)
    hi = 32000 if 32000 in by_d else max(by_d)
    mid = min(by_d, key=lambda d: abs(d - 16000))
    std, at16 = (lo, hi) == (1000, 32000), mid == 16000
    speedups = {
        r["n_features"]: r["kv_cache_speedup"] for r in rows if r["kv_cache_speedup"] is not None
    }
    return [
        _target("SED training step (factorised head) grows < 1.5x",
                _ratio(by_d[hi]["sed_ae_factorised_s"], by_d[lo]["sed_ae_factorised_s"]), 1.5, above=False,
                at_setting=std, detail=f"autoencoder step, D={hi} / D={lo}"),
        _target("dense step >= 10x SED training step", by_d[mid]["dense_over_sed_step"], 10.0, above=True,
                at_setting=at16, detail=f"D={mid}; SED step = autoencoder (factorised) + latent diffusion"),
        _target("dense step / SED autoencoder step", by_d[mid]["dense_over_sed_ae"], 10.0, above=True,
                at_setting=at16, detail=f"D={mid}", info=True),
        _target("dense step / SED latent-diffusion step", by_d[mid]["dense_over_sed_diffusion"], 10.0,
                above=True, at_setting=at16, detail=f"D={mid}", info=True),
        _target("KV cache >= 5x faster decoding", min(speedups.values(), default=None), 5.0, above=True,
                at_setting=n_nonzero == 256, detail=f"smallest over D in {sorted(speedups)}, {n_nonzero} non-zeros"),
        _target("SED training peak memory grows < 1.5x",
                _ratio(peaks[hi].get("sed_ae_factorised"), peaks[lo].get("sed_ae_factorised")), 1.5,
                above=False, at_setting=std, detail=f"autoencoder step (factorised), D={hi} / D={lo}"),
        _target("SED decoding peak memory grows < 1.5x",
                _ratio(peaks[hi].get("sed_decode_cached"), peaks[lo].get("sed_decode_cached")), 1.5,
                above=False, at_setting=std, detail=f"cached decoding, D={hi} / D={lo}"),
    ]  # fmt: skip


def summarise(medians: dict, peaks: dict, params: dict, args: argparse.Namespace) -> dict[str, Any]:
    """Rows per D, ratios and target checks as a JSON-ready dict."""
    ds = sorted(medians)
    rows = [summarise_row(d, medians[d], medians[ds[0]], args.gen_batch_size) for d in ds]
    for row in rows:
        row["peak_mb"] = peaks[row["n_features"]]
        row["param_mb"] = params[row["n_features"]]
    return {"rows": rows, "targets": check_targets(rows, peaks, args.n_nonzero)}


TRAIN_COLUMNS = [
    ("n_features", "D", "d"), ("sed_ae_flat_s", "AE flat s", ".3f"), ("sed_ae_factorised_s", "AE fact s", ".3f"),
    ("sed_diffusion_s", "SED diff s", ".4f"), ("dense_step_s", "dense s", ".3f"),
    ("sed_ae_flat_vs_smallest", "flat/1st", ".2f"), ("sed_ae_factorised_vs_smallest", "fact/1st", ".2f"),
    ("dense_step_vs_smallest", "dense/1st", ".2f"), ("dense_over_sed_step", "dense/SED", ".2f"),
    ("dense_over_sed_ae", "dense/AE", ".2f"), ("dense_over_sed_diffusion", "dense/diff", ".1f"),
]  # fmt: skip
GEN_COLUMNS = [
    ("n_features", "D", "d"), ("sed_latents_ms_per_row", "SED z ms", ".2f"),
    ("sed_decode_cached_ms_per_row", "dec cache ms", ".1f"), ("sed_decode_uncached_ms_per_row", "dec full ms", ".1f"),
    ("kv_cache_speedup", "KV x", ".1f"), ("sed_generate_ms_per_row", "SED gen ms", ".1f"),
    ("dense_generate_ms_per_row", "dense gen ms", ".1f"), ("dense_over_sed_generate", "dense/SED", ".2f"),
]  # fmt: skip
MEMORY_KEYS = [*STEP_METHODS, "sed_decode_cached", "sed_decode_uncached", "dense_generate"]


def print_report(result: dict[str, Any]) -> None:
    """Print the tables and one PASS/FAIL line per target."""
    rows = result["rows"]
    print("\nTraining step (median seconds; x/1st = relative to the smallest D)")
    print(format_table(rows, TRAIN_COLUMNS))
    print("\nGeneration (median ms per row)")
    print(format_table(rows, GEN_COLUMNS))
    print(f"\nExtra peak memory per call, MiB ({result['memory_method']}); parameters, MiB")
    mem_rows = [
        {"n_features": r["n_features"], **(r["peak_mb"] or {}), **r["param_mb"]} for r in rows
    ]
    keys = MEMORY_KEYS + list(rows[0]["param_mb"])
    print(format_table(mem_rows, [("n_features", "D", "d"), *[(k, k, ".1f") for k in keys]]))
    print("\nDESIGN section 5 targets")
    for t in result["targets"]:
        verdict = "n/a " if t["passed"] is None else ("PASS" if t["passed"] else "FAIL")
        verdict = "info" if t["info"] else verdict
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        note = "" if t["at_target_setting"] else " [not at the target setting]"
        print(f"{verdict}  {t['name']}: {value} (threshold {t['threshold']}; {t['detail']}){note}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables and the target checks, write the JSON."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    env = environment(device)
    print(
        f"device={device}, threads={torch.get_num_threads()}, load={env['load_average']}",
        flush=True,
    )
    cases = {d: build_cases(d, args, device, rng) for d in args.features}
    times = measure(cases, args, device)
    peaks, memory_method = (
        ({d: {} for d in cases}, None) if args.no_memory else measure_memory(cases, device)
    )
    env["load_average_end"] = environment(device)["load_average"]
    medians = {d: {m: median(v) for m, v in ts.items()} for d, ts in times.items()}
    result = summarise(medians, peaks, {d: c["param_mb"] for d, c in cases.items()}, args)
    result.update(
        config={k: v for k, v in vars(args).items() if k != "out"},
        environment=env,
        memory_method=memory_method,
        times_s={str(d): ts for d, ts in times.items()},
    )
    print_report(result)
    print(f"\nwrote {write_json(args.out, result)}")
    return result


if __name__ == "__main__":
    main()
