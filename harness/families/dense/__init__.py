"""The ``dense`` family (MambaOut, arXiv 2405.07992): FCOS detection and FPN segmentation heads (``model``)
on the shared vision backbone (``harness.families.vision``); ``data`` (procedural shapes, COCO, ADE20K),
``shapes`` (its renderer) and the family itself (``family``)."""
