"""Executors move run specs to where they run and results back to the store; they never train."""
