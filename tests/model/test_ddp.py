import numpy as np
import pytest

import sc_sed

from .conftest import TINY, tiny_counts


@pytest.mark.slow
def test_ddp_training_on_two_cpu_processes():
    """Both stages train under Lightning DDP (two spawned CPU processes, gloo backend)."""
    adata = tiny_counts(n_cells=64)
    sc_sed.SEDModel.setup_anndata(adata, layer="counts", labels_key="cell_type")
    model = sc_sed.SEDModel(adata, **TINY)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(
        max_epochs=1, diffusion_max_epochs=1, batch_size=16, accelerator="cpu", devices=2,
        strategy="ddp_spawn", enable_progress_bar=False,
    )  # fmt: skip
    after = model.module.state_dict()
    changed = [k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy())]
    assert any(k.startswith("encoder.") for k in changed)
    assert any(k.startswith("diffusion.denoiser.") for k in changed)
    synth = model.generate(4, n_steps=2, progress_bar=False)
    assert synth.n_obs == 4
