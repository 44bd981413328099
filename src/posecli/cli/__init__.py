"""The `posecli` command line: a thin layer over the library, one module per command."""

from __future__ import annotations

import os
import signal
import sys

import click

from .. import __version__
from ..errors import OutputError, PoseCliError
from .bench import bench
from .common import EXIT_INTERNAL, EXIT_OUTPUT, EXIT_USAGE, Interrupted, error
from .eval import eval_command
from .infer import infer
from .models import models_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="posecli")
def cli() -> None:
    """Multi-person pose estimation with ST's int8 YOLOv8n-pose TFLite models."""


for command in (infer, eval_command, bench, models_group):
    cli.add_command(command)


def _raise_interrupted(signum: int, _frame) -> None:
    """Signal handler: unwind like Ctrl-C."""
    raise Interrupted(signum)


def main() -> None:
    """Entry point: run the CLI and map every outcome to one exit status, never a traceback.

    click's own `main` is not used: it turns a closed pipe into exit status 1.
    """
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file size limit gives EFBIG, not death
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
    except Interrupted as exc:
        error("interrupted")
        code = exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        error("interrupted")
        code = 128 + signal.SIGINT
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    except Exception as exc:  # a bug: still one line, not a traceback
        error(f"internal error: {type(exc).__name__}: {exc} (please report it)")
        code = EXIT_INTERNAL
    sys.exit(code or 0)
