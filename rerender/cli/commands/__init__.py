"""One module per `rerender` command, each with `register(subparsers)` and `run(args) -> int`."""
