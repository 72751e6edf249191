"""What the two vision families of the MambaOut study (arXiv 2405.07992), ``classification`` and ``dense``,
share: the ``model:`` block and variant table of one backbone whose token mixer is swapped (``model``,
on ``harness.models.backbone``) and deterministic step batches (``batching``). Not a family itself.
"""
