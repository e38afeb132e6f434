"""The contract, without the arithmetic: the table of modes, the options and their checks, the
validated geometry of a pooling call (`PoolPlan`), output dtypes and value ranges.

Nothing here pools; everything above (the engine, the backends, the figures, the command
line) reads its decisions from here. See docs/semantics.md for what they mean."""
