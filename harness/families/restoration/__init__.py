"""Image restoration family (super-resolution, denoising): MambaIRv2 vs MambaIR vs SwinIR vs gated CNN.

``family.py`` (the ``Family`` and its variant table), ``config.py`` (the ``data:`` / ``model:`` schemas),
``data.py`` (photos / folders, degradations, crops), ``model.py`` (the shared skeleton and the mixers of a
layer), ``assm.py`` (MambaIRv2's attentive state-space module), ``metrics.py`` (Y-channel PSNR / SSIM).
"""
