"""The ``classification`` family (MambaOut, arXiv 2405.07992): image classification on the shared vision
backbone (``harness.families.vision``) whose token mixer is swapped; ``data`` (digits, LFW faces,
Pathfinder, image folders), ``pathfinder`` (its renderer) and the family itself (``family``)."""
