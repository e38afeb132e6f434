"""The application layer: what a command does to one file, in library terms, below the command
line and above the engine, io/ and stream/.

- `settings`: `PoolSettings`, `BigData`, `FileResult`, and what the settings make of one array;
- `memory`: one file through memory (`pool_file`, the door `pool` and `batch` call);
- `streamed`: one file block by block, when it is too big for the budget or a store;
- `describe`: what `info` prints;
- `figures`: the PNG figures of a file (`compare`, `grad`, `--compare`).

Each module is imported by name (this package imports none of them, so loading one costs only it).
"""
