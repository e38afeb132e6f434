"""`python -m poolcli`: the same as the `poolcli` command."""

from .cli import main

raise SystemExit(main())
