"""SED-only measurements of the fidelity report: what the latent carries, exposure bias.

* **Latent carry**: training cells decoded from their own latent versus from the latent of
  another training cell with the same label. If the own-latent decodes follow the source
  cell's library size and detected genes much better than the same-label decodes, the
  latent carries the cell (and not only its label).
* **Latent usage**: cells decoded from diffusion samples, from the same samples with every
  latent dimension shuffled independently across cells (marginals kept, joint structure
  broken), and from one constant latent (the mean training latent), next to held-out
  cells encoded and decoded. If shuffled or constant latents decode as close to real cells
  as diffusion latents, the decoder ignores the latent. The kNN label accuracy of the
  encoded decodes (their source cells' labels) against that of the diffusion decodes (the
  labels they were sampled for) tells whether cell identity is lost by the decoder or by
  the diffusion.
* **Exposure bias**: the decoder's END probability and emitted feature ids step by step,
  teacher-forced on real rows versus along the rows it generates itself from the same
  latents (free running). The decoder's probabilities given a prefix do not depend on how
  the prefix was made, so the free-running statistics are teacher-forced passes over the
  generated rows. The **expected detections** (the hazards summed over the features a row
  passes, its compensator) over the actual ones tell a miscalibrated decoder (teacher-forced
  ratio away from 1: it expects fewer or more detections than real rows have) from a
  calibrated one whose own rows drift (ratio 1, free-running lengths still off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from _fidelity_stats import detected_genes, library_size, log_normalise, stratified_subset
from scipy.stats import pearsonr, wasserstein_distance

from sc_sed.data import pairs_to_csr
from sc_sed.model._conditions import draw_conditions

if TYPE_CHECKING:
    from anndata import AnnData

    from sc_sed import SEDModel

N_STEP_BINS = 24


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(pearsonr(a, b)[0])


@torch.inference_mode()
def encode(model: SEDModel, adata: AnnData, rows: np.ndarray, batch_size: int) -> torch.Tensor:
    """Posterior means of ``rows`` of ``adata`` (registered like the training data)."""
    model.module.eval()
    z = [
        model.module.encode(b["tokens_index"], b["tokens_value"])
        for b in model._token_batches(adata, rows, batch_size)
    ]
    return torch.cat(z)


@torch.inference_mode()
def decode(model: SEDModel, z: torch.Tensor, seed: int, batch_size: int) -> sp.csr_matrix:
    """Sampled decodes of latents ``z`` (seeded) as a CSR count matrix."""
    model.module.eval()
    gen = torch.Generator(device=model.module.device).manual_seed(seed)
    parts = []
    for start in range(0, z.shape[0], batch_size):
        index, value, _ = model.module.decode(z[start : start + batch_size], generator=gen)
        parts.append(pairs_to_csr(index, value, model.module.n_features))
    return sp.vstack(parts, format="csr")


def _registered(model: SEDModel, adata: AnnData) -> AnnData:
    return model._validate_anndata(adata.copy())


def _cell_corr(source: sp.csr_matrix, decoded: sp.csr_matrix) -> float:
    """Mean over cells of the Pearson correlation of log-normalised profiles."""
    a, b = log_normalise(sp.csr_matrix(source)), log_normalise(sp.csr_matrix(decoded))
    return float(np.nanmean([_corr(x, y) for x, y in zip(a, b, strict=True)]))


def latent_carry(
    model: SEDModel, train: AnnData, labels_key: str, layer: str | None, n: int, seed: int,
    batch_size: int,
) -> dict[str, Any]:  # fmt: skip
    """Own-latent versus same-label-latent decodes of ``n`` training cells (see module doc)."""
    rng = np.random.default_rng(seed)
    labels = train.obs[labels_key].astype(str).to_numpy()
    rows = np.sort(rng.choice(train.n_obs, size=min(n, train.n_obs), replace=False))
    partners = np.array([_partner(labels, r, rng) for r in rows])
    adata = _registered(model, train)
    z_own = encode(model, adata, rows, batch_size)
    z_mate = encode(model, adata, partners, batch_size)
    x = sp.csr_matrix(train.X if layer is None else train.layers[layer])
    src, mate = x[rows], x[partners]
    own, other = decode(model, z_own, seed, batch_size), decode(model, z_mate, seed, batch_size)
    out = {"n_cells": len(rows)}
    for name, fn in (("library_size", library_size), ("detected_genes", detected_genes)):
        s = np.log1p(fn(src))
        out[f"{name}_corr_own_latent"] = _corr(s, np.log1p(fn(own)))
        out[f"{name}_corr_same_label_latent"] = _corr(s, np.log1p(fn(other)))
        out[f"{name}_corr_same_label_real"] = _corr(s, np.log1p(fn(mate)))
        out[f"{name}_ratio_own_latent"] = float(fn(own).mean() / max(1e-9, fn(src).mean()))
    out["profile_corr_own_latent"] = _cell_corr(src, own)
    out["profile_corr_same_label_latent"] = _cell_corr(src, other)
    out["profile_corr_same_label_real"] = _cell_corr(src, mate)
    out["_scatter"] = {
        "source_detected": detected_genes(src).tolist(),
        "own_detected": detected_genes(own).tolist(),
        "same_label_detected": detected_genes(other).tolist(),
    }
    return out


def _partner(labels: np.ndarray, row: int, rng: np.random.Generator) -> int:
    same = np.flatnonzero(labels == labels[row])
    same = same[same != row]
    return int(rng.choice(same)) if len(same) else row


def diffusion_latents(
    model: SEDModel, counts: dict, n_steps: int, seed: int
) -> tuple[torch.Tensor, np.ndarray | None]:
    """Latents sampled by the latent diffusion for the label mix ``counts`` (seeded).

    Returns the latents and the label each was sampled for (None without a labels key).
    """
    key = model.registry_["setup_args"].get("labels_key")
    codes = draw_conditions(
        model._conditions,
        {key: counts} if key else {},
        None if key else sum(counts.values()),
        model._train_condition_codes(),
        np.random.default_rng(seed),
    )
    gen = torch.Generator(device=model.module.device).manual_seed(seed)
    cond = torch.as_tensor(codes, device=model.module.device)
    with torch.inference_mode():
        z = model.module.diffusion.sample(cond, n_steps=n_steps, generator=gen)
    if not key:
        return z, None
    spec = next(c for c in model._conditions if c.obs_key == key)
    return z, np.asarray(spec.categories, dtype=object)[codes[:, model._conditions.index(spec)]]


def latent_variants(
    model: SEDModel, heldout: AnnData, train: AnnData, counts: dict, n_steps: int, seed: int,
    batch_size: int,
) -> tuple[dict[str, sp.csr_matrix], dict[str, np.ndarray | None]]:  # fmt: skip
    """Decodes of encoded held-out, diffusion, dimension-shuffled and constant latents.

    Also returns each variant's labels: the held-out cells' own for the encoded latents,
    the labels the diffusion sampled for (None without a labels key) for the others.
    """
    z_diff, diff_labels = diffusion_latents(model, counts, n_steps, seed)
    gen = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(z_diff.shape[0], generator=gen) for _ in range(z_diff.shape[1])]
    z_shuf = torch.stack([z_diff[p, j] for j, p in enumerate(perms)], dim=1)
    z_train = encode(model, _registered(model, train), np.arange(train.n_obs), batch_size)
    z_const = z_train.mean(0, keepdim=True).expand_as(z_diff).contiguous()
    z_enc = encode(model, _registered(model, heldout), np.arange(heldout.n_obs), batch_size)
    latents = {"encoded": z_enc, "diffusion": z_diff, "shuffled": z_shuf, "constant": z_const}
    key = model.registry_["setup_args"].get("labels_key")
    own = heldout.obs[key].to_numpy() if key else None
    labels = {k: (own if k == "encoded" else diff_labels) for k in latents}
    return {k: decode(model, z, seed, batch_size) for k, z in latents.items()}, labels


# -- exposure bias --------------------------------------------------------------------------


@torch.inference_mode()
def _end_and_ids(model: SEDModel, z: torch.Tensor, index: torch.Tensor, value: torch.Tensor):
    """Per-position P(END) given the prefix, the emitted ids and the valid positions.

    ``index``/``value`` are framed rows ``[START, pairs..., END/PAD...]``; position ``t``
    is the state after ``t`` emitted pairs.
    """
    dec, d = model.module.decoder, model.module.n_features
    inp_i, inp_v = index[:, :-1], value[:, :-1]
    h = dec.forward(z, inp_i, inp_v)
    last = torch.where(inp_i < d, inp_i, -1)
    last = torch.cummax(last, dim=1).values
    end = torch.full_like(inp_i, d)
    logp = dec.index_head.log_prob(h, end, last, model.module.allowed_features, z.unsqueeze(1))
    n_pairs = (index < d).sum(1)
    steps = torch.arange(inp_i.shape[1], device=index.device)
    valid = steps[None, :] <= n_pairs[:, None]
    ids = torch.where(index[:, 1:] < d, index[:, 1:], -1)
    return logp.exp(), ids, valid, n_pairs


def _frame(index: torch.Tensor, value: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Framed tokens ``[START, pairs, END, PAD...]`` from decoded pairs (pad ids ``>= d``)."""
    b = index.shape[0]
    start = torch.full((b, 1), d + 1, dtype=index.dtype, device=index.device)
    pad = torch.full((b, 1), d + 2, dtype=index.dtype, device=index.device)
    idx = torch.cat([start, index, pad], dim=1)
    n = (index < d).sum(1)
    idx[torch.arange(b), n + 1] = d  # END right after the last pair
    val = torch.cat([torch.zeros_like(value[:, :1]), value, torch.zeros_like(value[:, :1])], 1)
    return idx, val


def _step_curves(p_end, ids, valid, n_pairs, edges: np.ndarray) -> dict[str, list]:
    """Mean P(END) (before the row's end) and mean emitted id per step bin."""
    p_end, ids = p_end.cpu().numpy(), ids.cpu().numpy().astype(float)
    before = valid.cpu().numpy() & (
        np.arange(p_end.shape[1])[None] < n_pairs.cpu().numpy()[:, None]
    )
    steps = np.broadcast_to(np.arange(p_end.shape[1])[None], p_end.shape)
    out = {"p_end": [], "feature_id": [], "n_rows": []}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = before & (steps >= lo) & (steps < hi)
        out["p_end"].append(float(p_end[m].mean()) if m.any() else None)
        out["feature_id"].append(float(ids[m].mean()) if m.any() else None)
        out["n_rows"].append(int(m.any(1).sum()))
    return out


def _survival(p_end, valid, n_pairs) -> np.ndarray:
    """Per row: P(no END before the row's own end) under the decoder's hazards."""
    steps = torch.arange(p_end.shape[1], device=p_end.device)[None]
    before = valid & (steps < n_pairs[:, None])
    log_surv = torch.where(before, torch.log1p(-p_end.clamp_max(1 - 1e-7)), 0.0).sum(1)
    return log_surv.exp().cpu().numpy()


@torch.inference_mode()
def expected_detections(
    model: SEDModel, z: torch.Tensor, index: torch.Tensor, value: torch.Tensor,
    max_states: int = 2**22,
) -> torch.Tensor:  # fmt: skip
    """Per framed row: the decoder's detection hazards summed over the features it passes.

    After emitting ``last`` the decoder gives every later feature ``j`` a hazard
    ``P(next = j) / P(next >= j)``; the features between one emitted id and the next
    are passed (the last of them detected). Summed over a row this is the row's
    compensator: for a decoder whose probabilities are right, its mean equals the mean
    number of detections. Teacher-forced on real rows it tells whether the decoder
    expects as many detections as real rows have; on the decoder's own rows it is 1 up
    to sampling noise (a check of the computation). Needs the whole next-id distribution
    (``O(D)`` per step), so it is meant for a few dozen rows.
    """
    dec, d = model.module.decoder, model.module.n_features
    allowed = model.module.allowed_features
    inp = index[:, :-1]
    h = dec.forward(z, inp, value[:, :-1])
    last = torch.cummax(torch.where(inp < d, inp, -1), 1).values
    nxt = torch.where(index[:, 1:] < d, index[:, 1:], d)
    n_states = (index < d).sum(1) + 1  # one state per pair plus the final (END) one
    ids = torch.arange(d, device=z.device)
    out = torch.zeros(z.shape[0], device=z.device)
    chunk = max(1, max_states // (d + 1))
    for r in range(z.shape[0]):
        for s in range(0, int(n_states[r]), chunk):
            e = min(s + chunk, int(n_states[r]))
            logp = dec.index_head.log_probs(
                h[r : r + 1, s:e], last[r : r + 1, s:e], allowed, z[r : r + 1, None]
            )[0]
            log_at_or_after = torch.logcumsumexp(logp.flip(-1), -1).flip(-1)
            hazard = torch.nan_to_num((logp - log_at_or_after)[:, :d].exp())
            passed = (ids > last[r, s:e, None]) & (ids <= nxt[r, s:e, None])
            out[r] += (hazard * passed).sum()
    return out


def exposure_bias(
    model: SEDModel, adata: AnnData, layer: str | None, n: int, seed: int, batch_size: int,
    n_calibration: int = 32,
) -> dict[str, Any]:  # fmt: skip
    """Teacher-forced versus free-running decoder statistics on ``n`` rows of ``adata``.

    The expected detections (:func:`expected_detections`) are computed on the first
    ``n_calibration`` of the rows.
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(adata.n_obs, size=min(n, adata.n_obs), replace=False))
    reg = _registered(model, adata)
    d, gen = model.module.n_features, torch.Generator(device=model.module.device).manual_seed(seed)
    tf, fr, expected = [], [], {"teacher_forced": [], "free_running": []}
    n_done = 0
    for b in model._token_batches(reg, rows, batch_size):
        z = model.module.encode(b["tokens_index"], b["tokens_value"])
        tf.append(_end_and_ids(model, z, b["tokens_index"], b["tokens_value"]))
        with torch.inference_mode():
            index, value, _ = model.module.decode(z, generator=gen)
        framed = _frame(index, value, d)
        fr.append(_end_and_ids(model, z, *framed))
        k = min(n_calibration - n_done, z.shape[0])
        if k > 0:
            for key, (i, v) in (("teacher_forced", (b["tokens_index"], b["tokens_value"])),
                                ("free_running", framed)):  # fmt: skip
                expected[key].append(expected_detections(model, z[:k], i[:k], v[:k]))
            n_done += k
    return _summarise_exposure(tf, fr, expected)


def _cat(parts: list, k: int) -> torch.Tensor:
    width = max(p[k].shape[1] for p in parts) if parts[0][k].dim() == 2 else None
    if width is None:
        return torch.cat([p[k] for p in parts])
    fill = {0: 0.0, 1: -1, 2: False}[k]
    return torch.cat(
        [torch.nn.functional.pad(p[k], (0, width - p[k].shape[1]), value=fill) for p in parts]
    )


def _detection_ratio(expected: list[torch.Tensor], n_pairs: torch.Tensor) -> float:
    """Summed expected detections over the summed detections of the same (first) rows."""
    if not expected:
        return float("nan")
    e = torch.cat(expected)
    return float(e.sum() / n_pairs[: len(e)].sum().clamp_min(1))


def _summarise_exposure(tf: list, fr: list, expected: dict[str, list]) -> dict[str, Any]:
    tf_t = [_cat(tf, k) for k in range(4)]
    fr_t = [_cat(fr, k) for k in range(4)]
    n_cal = sum(len(e) for e in expected["teacher_forced"])
    len_tf, len_fr = tf_t[3].cpu().numpy(), fr_t[3].cpu().numpy()
    top = int(max(len_tf.max(), len_fr.max(), 1))
    edges = np.unique(np.linspace(0, top + 1, N_STEP_BINS + 1).astype(int))
    surv_tf, surv_fr = _survival(tf_t[0], tf_t[2], tf_t[3]), _survival(fr_t[0], fr_t[2], fr_t[3])
    return {
        "n_cells": len(len_tf),
        "length_real_mean": float(len_tf.mean()),
        "length_free_running_mean": float(len_fr.mean()),
        "length_corr": _corr(np.log1p(len_tf), np.log1p(len_fr)),
        "length_w1": float(wasserstein_distance(len_tf, len_fr)),
        "p_end_before_end_teacher_forced": _mean_before(tf_t),
        "p_end_before_end_free_running": _mean_before(fr_t),
        "p_end_at_end_teacher_forced": _at_end(tf_t),
        "p_end_at_end_free_running": _at_end(fr_t),
        "survival_median_teacher_forced": float(np.median(surv_tf)),
        "survival_median_free_running": float(np.median(surv_fr)),
        "n_calibration_cells": n_cal,
        "expected_over_actual_detections_teacher_forced": _detection_ratio(
            expected["teacher_forced"], tf_t[3]
        ),
        "expected_over_actual_detections_free_running": _detection_ratio(
            expected["free_running"], fr_t[3]
        ),
        "step_edges": edges.tolist(),
        "curves_teacher_forced": _step_curves(*tf_t, edges),
        "curves_free_running": _step_curves(*fr_t, edges),
        "_lengths": {"real": len_tf.tolist(), "free_running": len_fr.tolist()},
    }


def _mean_before(t: list[torch.Tensor]) -> float:
    p_end, _, valid, n_pairs = t
    steps = torch.arange(p_end.shape[1], device=p_end.device)[None]
    m = valid & (steps < n_pairs[:, None])
    return float(p_end[m].mean()) if bool(m.any()) else float("nan")


def _at_end(t: list[torch.Tensor]) -> float:
    p_end, _, _, n_pairs = t
    return float(p_end.gather(1, n_pairs.clamp_max(p_end.shape[1] - 1)[:, None]).mean())


def train_reference(train: AnnData, counts: dict, labels_key: str, seed: int) -> np.ndarray:
    """Rows of the training split with the held-out label mix (the real-vs-real reference)."""
    return stratified_subset(train.obs[labels_key].to_numpy(), counts, seed)


@torch.inference_mode()
def teacher_forced_nll(model: SEDModel, adata: AnnData, batch_size: int) -> dict[str, float]:
    """Held-out index NLL per target token and value NLL per pair (posterior-mean latents).

    Targets the decoder cannot emit (genes never seen in training: log-probability
    ``-inf``) are left out of the index NLL and counted, as in the Bernoulli reference.
    """
    module = model.module
    module.eval()
    sums = np.zeros(5)
    for b in model._token_batches(_registered(model, adata), np.arange(adata.n_obs), batch_size):
        z = module.encode(b["tokens_index"], b["tokens_value"])
        gen = module.generative(z, b["tokens_index"], b["tokens_value"])
        logp, ok = gen["index_logp"], torch.isfinite(gen["index_logp"]) & gen["target_mask"]
        sums += [
            float(-torch.where(ok, logp, 0.0).sum()),
            float(gen["value_nll"].sum()),
            float(ok.sum()),
            float(gen["pair_mask"].sum()),
            float((gen["target_mask"] & ~ok).sum()),
        ]
    return {
        "index_nll_per_token": sums[0] / sums[2],
        "value_nll_per_pair": sums[1] / sums[3],
        "n_unemittable_targets": int(sums[4]),
    }
