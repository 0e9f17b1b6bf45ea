"""The `agentrt` command line: the top layer, which composes every other (see `app`)."""

from agentrt.cli.app import app, main

__all__ = ["app", "main"]
