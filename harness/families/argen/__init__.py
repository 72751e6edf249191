"""Class-conditional autoregressive image generation over VQ tokens (AiM, Li et al., arXiv 2408.12245).

Stage 1 (``tokenizer``): a VQ-VAE in LlamaGen's layout turns each image into a raster sequence of codes;
it is trained once per data config and cached, so every AR variant of a suite shares it (or a pretrained
LlamaGen VQ-f16 checkpoint is loaded from a user path). Stage 2 (``model``): a next-token model over the
codes, paired as ``aim`` (Mamba2 mixers, adaLN-group, CFG), ``transformer`` (LlamaGen-style causal decoder
with a KV cache) and ``gated_cnn`` (causal MambaOut blocks with a conv cache). ``metrics`` scores NLL in
bits per token and samples (classifier-FID, class accuracy); ``family`` wires it into the harness.
"""
