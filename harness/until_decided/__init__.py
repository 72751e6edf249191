"""``harness run SUITE --until-decided``: add seeds, in looks, to what the report cannot yet decide.

After the planned seeds (look 0), each look reads the results folder as the report does, lists the open
items (undecided verdict cells and undecided claims, :func:`harness.report.verdict.open_items` and
:func:`harness.report.claims.claim_open_items`), adds ``seed_batch`` shared seeds to the variants of each
(the same new seeds on both sides of every open comparison, at every grid point of a swept variant, up to
``max_seeds`` per grid point), runs them through the same launcher and looks again, until nothing more
seeds could decide is open or every open item has ``max_seeds``.

The statistics that keep these repeated looks honest are the report's (``harness.report.sequential``: each
p-value adjusted for every look the design in ``RESULTS_DIR/sequential.json`` could take). Here:

* ``seeds``: which seeds a look adds (a pure function of the stored runs and the open items);
* ``looks``: the durable record of each look's runs (``RESULTS_DIR/looks.json``), written before they start;
* ``loop``: the loop itself, its progress lines and its closing summary.

Resume: the sequence is a function of what is stored plus that record, so a run killed anywhere (even
``kill -9`` half-way through a look) continues the same sequence: a recorded look is completed from its
record, never re-decided on partial data, and the next look is decided from complete data only.
"""

from harness.until_decided.loop import until_decided

__all__ = ["until_decided"]
