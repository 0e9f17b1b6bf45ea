"""`python -m agentrt.cli`: the same as the `agentrt` command."""

from agentrt.cli.app import main

main()
