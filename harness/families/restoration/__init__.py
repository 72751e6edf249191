"""Image restoration family (super-resolution, denoising): MambaIRv2 vs MambaIR vs SwinIR vs gated CNN.

``family.py`` (the ``Family``), ``data.py`` (photos / folders, degradations, crops), ``model.py`` (the
shared skeleton), ``assm.py`` (MambaIRv2's attentive state-space module), ``pairing.py`` (mixers per
variant), ``metrics.py`` (Y-channel PSNR / SSIM).
"""
