"""The `poolcli` command line: the app and its options (app.py), the commands (commands.py, batch.py, inspect.py)
and what they print (terminal.py, batch_display.py). Importing the package registers every
command on `app`; `main` is the console script's entry point.
"""

from . import batch, bigdata, commands, inspect  # noqa: F401 (they register their commands on app)
from .app import app, main

__all__ = ["app", "main"]
