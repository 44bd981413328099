"""The `posecli` command line: a thin layer over the library, one module per command."""

from __future__ import annotations

import os
import signal
import sys
import warnings

import click

from posecli import __version__
from posecli.cli.bench import bench
from posecli.cli.common import (
    EXIT_INTERNAL,
    EXIT_OUTPUT,
    EXIT_USAGE,
    divert_native_stderr,
    error,
    stand_in_for_closed_streams,
)
from posecli.cli.eval import eval_command
from posecli.cli.infer import infer
from posecli.cli.models import models_group
from posecli.cli.serve import serve
from posecli.cli.track import track
from posecli.core.errors import OutputError, PoseCliError
from posecli.run import interrupts
from posecli.run.interrupts import Interrupted


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="posecli")
def cli() -> None:
    """Multi-person pose estimation with ST's int8 YOLOv8n-pose TFLite models."""


for command in (infer, track, serve, eval_command, bench, models_group):
    cli.add_command(command)


def main() -> None:
    """Entry point: run the CLI and map every outcome to one exit status, never a traceback.

    Native libraries' messages and Python warnings are dropped (errors are posecli's own
    lines), and exceptions that Python can only report, from finalizers, are ignored.
    """
    stand_in_for_closed_streams()
    interrupts.install()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file size limit gives EFBIG, not death
    divert_native_stderr()
    warnings.simplefilter("ignore")
    sys.unraisablehook = lambda _unraisable: None
    try:
        code = run_cli()
    except Interrupted as exc:  # also when it comes while another outcome is being reported
        error("interrupted")
        interrupts.reported()
        code = exc.exit_code
    interrupts.finish(code)


def run_cli() -> int:
    """Run the command; its exit status, with every error reported on one line.

    click's own `main` is not used: it turns a closed pipe into exit status 1.
    """
    try:
        with cli.make_context("posecli", sys.argv[1:]) as ctx:
            code = cli.invoke(ctx)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = EXIT_USAGE
    except OutputError as exc:
        error(str(exc))
        code = EXIT_OUTPUT
    except PoseCliError as exc:
        error(str(exc))
        code = EXIT_USAGE
    except (click.exceptions.Abort, KeyboardInterrupt):
        raise Interrupted(signal.SIGINT) from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    except Exception as exc:  # a bug: still one line, not a traceback
        error(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        code = EXIT_INTERNAL
    return code or 0
