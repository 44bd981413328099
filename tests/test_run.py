"""The run as a library call: posecli.run_sources writes what `posecli infer` writes."""

from __future__ import annotations

from posecli import RunOptions, run_sources
from posecli.run.job import Reporter

from conftest import BUS, ZIDANE, run_cli


class Collected(Reporter):
    """A reporter that keeps the error lines."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, line: str) -> None:
        self.errors.append(line)


def test_run_sources_writes_the_cli_results_and_copies(tmp_path, estimator):
    missing = str(tmp_path / "missing.jpg")
    sources = [str(BUS), missing, str(ZIDANE)]
    out, copies = tmp_path / "poses.jsonl", tmp_path / "copies"
    report = Collected()
    done = run_sources(estimator, sources, RunOptions(output=out, save_dir=copies), report)
    assert (done.stats.images, done.stats.failed, done.skipped) == (2, 1, 0)
    assert report.errors == [f"{missing}: no such file or directory"]
    assert sorted(p.name for p in copies.iterdir()) == ["bus.jpg", "zidane.jpg"]
    cli = run_cli("infer", *sources, "-f", "jsonl")
    assert cli.returncode == 1 and out.read_bytes() == cli.stdout


def test_run_sources_resumes_an_earlier_run(tmp_path, estimator):
    out = tmp_path / "poses.jsonl"
    run_sources(estimator, [str(BUS)], RunOptions(output=out))
    first = out.read_bytes()
    options = RunOptions(output=out, skip_existing=True)
    done = run_sources(estimator, [str(BUS), str(ZIDANE)], options)
    assert (done.skipped, [i.path for i in done.items]) == (1, [str(ZIDANE)])
    assert out.read_bytes().startswith(first) and len(out.read_bytes().splitlines()) == 2
