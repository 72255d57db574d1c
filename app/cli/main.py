"""``tributary`` — every subcommand registers itself from its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="tributary",
    help="Streaming-first ML: Kafka events in, sketched aggregates and predictions out over HTTP.",
    no_args_is_help=True,
    add_completion=False,
)

# Each module exposes register(app). Kept as names so a missing optional part is reported
# when its command runs rather than breaking the whole CLI.
COMMAND_MODULES = (
    "app.cli.stack_cmds",  # up, down, status
    "app.cli.data_cmds",  # generate, produce, schema
    "app.cli.query_cmds",  # query
)


def build() -> typer.Typer:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)
    return app


def main() -> None:
    build()()


if __name__ == "__main__":
    main()
