"""The ``theory`` family: the selective-SSM generalization experiments of Honarpisheh et al.
("Generalization Error Analysis for Selective State-Space Models Through the Lens of Attention",
arXiv 2502.01473).

The paper bounds the generalization gap of a single-layer selective SSM by a quantity that does not grow
with the sequence length T when the state matrix is stable (spectral abscissa ``s_A < 0``) and grows like
``T rho^T`` when ``s_A > 0``. This family makes that empirical: the paper's one-layer model with a
controllable ``s_A`` (``model.py``), its one-layer softmax- and linear-attention counterparts, and small
seeded train/test sets (``data.py``: majority, LRA ListOps) so that train - test accuracy can be read
against T. ``config.py`` holds the schemas, ``family.py`` wires them into the harness contract.
"""
