"""`python -m engine.cli`: the same as the `whetstone-engine` command."""

from engine.cli.main import main

raise SystemExit(main())
