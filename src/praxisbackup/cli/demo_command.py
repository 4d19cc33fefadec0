"""``praxisbackup demo``: the nightly job on a generated sample practice, end to end."""

from __future__ import annotations

import click

from praxisbackup.app.demo import DemoResult, run_demo
from praxisbackup.cli.context import human_size
from praxisbackup.report.render import render_text


@click.command()
@click.option(
    "--dir", "workdir", default="demo-output", show_default=True, help="Folder for the demo."
)
@click.option("--size-mb", default=64, show_default=True, help="Size of the sample practice data.")
@click.option("--lang", type=click.Choice(["de", "en"]), default="de", show_default=True)
def demo(workdir: str, size_mb: int, lang: str) -> None:
    """Run the nightly job on a generated sample practice, then restore and compare."""
    say = click.echo

    def on_step(step: str, r: DemoResult) -> None:
        if step == "sample":
            say(f"1. Sample practice server ({size_mb} MiB) in {r.server}")
            say(
                f"   {r.sample.files} files, {human_size(r.sample.bytes)}: "
                "CGM M1 PRO folders, ifap, archive, scans"
            )
            say(f"2. Configuration {r.config_path}; backup medium 'Mo' at {r.medium_root}")
        elif step == "night1":
            say(f"3. Night 1: nightly job finished: {r.nights[0].status.upper()}")
            say("")
            say(render_text(r.nights[0], lang))
        elif step == "night2":
            second = r.nights[1]
            new = sum(s.new_bytes for s in second.sources)
            say(
                f"4. Night 2 (after a day of practice work): {second.status.upper()}, "
                f"{human_size(new)} new data, service downtime {second.downtime_seconds} s"
            )
            say("5. Restoring the latest snapshot and comparing with the server ...")

    result = run_demo(workdir, size_mb, on_step)
    restored = result.restored
    assert restored is not None
    say(
        f"   restored {restored.files} files ({human_size(restored.bytes)}), "
        f"verified {restored.verified_files}; {result.compared} files compared, "
        f"{len(result.problems)} differences in content or modification time"
    )
    for p in result.problems[:10]:
        say(f"   ! {p}")
    say(
        "RESULT: "
        + (
            "OK - nightly job, verification and restore are complete and exact."
            if result.ok
            else "FAILED"
        )
    )
    say("(Status GELB/YELLOW only because the demo medium lies on the same disk as the data.)")
    if not result.ok:
        raise SystemExit(2)
