"""Readable ``--help``: ``--out DIR`` rather than typer's ``--out <path>``, flags without a type.

typer (0.29) shows each parameter's Python type in angle brackets (``<bool>``, ``<list[str]>``).
Every command and group made with :class:`App` shows instead what click would: the metavar
given, else the value's kind in capitals (``TEXT``, ``INTEGER``, ``PATH``); flags show nothing,
and arguments their name. Commands other modules add with ``@app.command()`` get the same. A
usage error (a missing argument, an unknown option) is one stderr line instead of a panel.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

# click's names for the kinds of value typer shows as Python types
_KINDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH", "datetime": "TIME"}


def _kind(option: TyperOption) -> str:
    name = option.bare_type().removeprefix("list[").removesuffix("]")
    return _KINDS.get(name, name.upper())


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the name column (INPUT...) already says what to give

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.display_name_raw if self.required else f"[{self.display_name_raw}]"]


def _readable(params: list[Any]) -> None:
    for param in params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument  # typer builds the argument; only its help differs
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            if param.nargs != 1 and not param.metavar.endswith("..."):
                param.metavar += "..."
        elif isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = "" if param.type_descriptor.annotation is bool else _kind(param)


def _without_type(option: TyperOption | None) -> TyperOption | None:
    if option is not None:
        option.metavar = ""  # --help is a flag
    return option


class Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _readable(self.params)

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        return _without_type(super().get_help_option(ctx))


class Group(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _readable(self.params)

    def get_help_option(self, ctx: Any) -> TyperOption | None:
        return _without_type(super().get_help_option(ctx))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """As typer runs a command, but a usage error is one stderr line, not a panel.

        ``her2-adapter convert: No such option: --bogus; see her2-adapter convert --help``,
        exit 2, like every other usage error of ours.
        """
        run = partial(super().main, args, prog_name, complete_var, False, windows_expand_args)
        if not standalone_mode:
            return run(**extra)
        try:
            code = run(**extra)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        except typer.TyperException as error:  # click's errors: usage, bad parameter, file
            sys.exit(_one_line(error))
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(error: typer.TyperException) -> int:
    """Print a command-line error as one line; the exit code it asks for."""
    # With no arguments a group prints its help before it raises: there is nothing to add.
    if type(error).__name__ != "NoArgsIsHelpError":
        context = getattr(error, "ctx", None)
        message = " ".join(error.format_message().split()).rstrip(".")
        if context is None:
            typer.echo(f"her2-adapter: {message}", err=True)
        else:
            path = context.command_path
            typer.echo(f"{path}: {message}; see {path} --help", err=True)
    return error.exit_code


class App(typer.Typer):
    """A ``typer.Typer`` whose commands are :class:`Command` unless told otherwise."""

    def __init__(self, *args: Any, cls: type[TyperGroup] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, cls=cls or Group, **kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or Command, **kwargs)
