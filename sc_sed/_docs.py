"""Parameter descriptions shared by several docstrings (filled in with docrep, as in scvi-tools)."""

from __future__ import annotations

from docrep import DocstringProcessor

_architecture = """\
n_latent
    Size of the latent space.
n_hidden
    Transformer width.
n_layers
    Transformer layers of the encoder and of the decoder.
n_heads
    Attention heads.
n_ff
    Feed-forward width of the Transformers.
dropout_rate
    Transformer dropout.
n_memory
    Memory tokens made from the latent for the decoder's cross-attention."""

_diffusion = """\
kl_weight
    Weight β of the KL term of the autoencoder.
denoiser_widths
    Widths of the MLP U-Net denoiser.
cond_dropout
    Probability of dropping each condition in diffusion training (classifier-free
    guidance)."""

#: ``@docs.dedent`` replaces ``%(architecture)s`` and ``%(diffusion)s`` in a docstring.
docs = DocstringProcessor(architecture=_architecture, diffusion=_diffusion)
