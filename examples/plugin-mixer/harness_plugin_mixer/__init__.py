"""An example harness plugin: two token mixers of a user's own, registered through ``harness.extend``."""
