"""Vision families of the MambaOut study (arXiv 2405.07992): ``classification`` and ``dense``
(detection / segmentation heads) on one backbone whose token mixer is swapped (``harness.models.backbone``).
"""
