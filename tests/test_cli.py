"""The `meddata` command end to end, run as a user would run it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import interrupt_after_units, run_cli


def test_help_and_version() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("convert", "sample", "validate", "info", "list", "quickstart"):
        assert command in out.stdout
    assert run_cli("--version").returncode == 0


def test_top_level_help_lines_match_the_commands_and_import_none_of_them() -> None:
    import subprocess
    import sys

    import click

    from meddata.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    for name, (_, line) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.get_short_help_str(limit=1000) == line, name
    probe = (
        "import sys; from meddata.cli.main import main; main(['--help']); "
        "print(sorted(m for m in ('pyarrow', 'polars', 'pydicom', 'torch', 'meddata.convert') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr


def test_a_run_without_deid_does_not_load_the_text_recognizer() -> None:
    """The name lists and PHI patterns take about 0.1 s to build: only de-identification
    pays for them, and the public names of meddata.deid still resolve on first use."""
    import subprocess
    import sys

    probe = (
        "import sys; import meddata.convert, meddata.adapters.dicom_folder, meddata.cli.convert; "
        "print(sorted(m for m in ('meddata.deid.patterns', 'meddata.deid.names', "
        "'pyarrow.compute') if m in sys.modules)); "
        "from meddata.deid import Deidentifier, cap_age; from meddata.deid import surrogates; "
        "print('meddata.deid.patterns' in sys.modules, callable(cap_age))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert out.stdout.split("\n")[:2] == ["[]", "True True"], out.stdout + out.stderr


def test_sample_convert_validate_info(tmp_path: Path) -> None:
    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    out = run_cli(
        "convert", "dicom-folder", str(src), "-o", str(tmp_path / "out"), "--workers", "2", "--json"
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["tables"]["person"] == 3 and summary["quarantined"] == 0
    path = summary["path"]
    plain = run_cli("convert", "dicom-folder", str(src), "-o", str(tmp_path / "out2"))
    assert plain.stdout.strip().endswith("dicom-folder/1.0")
    valid = run_cli("validate", path)
    assert valid.returncode == 0 and valid.stdout.startswith("valid:")
    info = run_cli("info", path, "--json")
    assert json.loads(info.stdout)["name"] == "dicom-folder"
    human = run_cli("info", path)
    assert "image_occurrence" in human.stdout and "quarantined inputs: 0" in human.stdout
    from meddata.writer import phi_items_replaced

    replaced = phi_items_replaced(summary["deid"]["counts"])  # what quickstart reports too
    assert replaced and f": {replaced} PHI items replaced" in human.stdout


def test_quarantine_lines_point_the_operator_at_the_path_map(tmp_path: Path) -> None:
    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    (src / "Doe^Jane").mkdir()
    (src / "Doe^Jane" / "bad.dcm").write_bytes(b"not dicom at all")
    done = run_cli("convert", "dicom-folder", str(src), "-o", str(tmp_path / "out"))
    path_map = str(tmp_path / "out" / "dicom-folder-1.0.quarantine-paths.jsonl")
    assert done.returncode == 0 and path_map in done.stderr and "Doe^Jane" not in done.stderr
    human = run_cli("info", done.stdout.strip())
    assert "quarantined inputs: 1" in human.stdout and path_map in human.stdout.replace("\n", "")


def test_validate_exits_1_with_readable_report(tmp_path: Path) -> None:
    src = tmp_path / "src"
    run_cli("sample", "dicom-folder", str(src), "--n", "2")
    path = json.loads(
        run_cli("convert", "dicom-folder", str(src), "-o", str(tmp_path), "--json").stdout
    )["path"]
    shard = next(Path(path).glob("tables/image/*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    out = run_cli("validate", path)
    assert out.returncode == 1
    assert "INVALID" in out.stderr and "tables/image/part-00000.parquet" in out.stderr
    assert json.loads(run_cli("validate", path, "--json").stdout)["ok"] is False


def test_errors_are_one_sentence_with_a_next_step_and_no_traceback(tmp_path: Path) -> None:
    out = run_cli("convert", "no-such-adapter", str(tmp_path), "-o", str(tmp_path))
    assert out.returncode == 2
    assert "error: There is no adapter called 'no-such-adapter'." in out.stderr
    assert "meddata list" in out.stderr and "Traceback" not in out.stderr
    missing = run_cli("info", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr and "→" in missing.stderr
    debug = run_cli("--debug", "info", str(tmp_path / "nothing"))
    assert "Traceback" in debug.stderr
    usage = run_cli("convert", "dicom-folder")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    bad_option = run_cli(
        "convert", "dicom-folder", str(tmp_path), "-o", str(tmp_path), "-O", "oops"
    )
    assert bad_option.returncode == 2 and "KEY=VALUE" in bad_option.stderr


def test_strict_exit_code_and_path(tmp_path: Path) -> None:
    src = tmp_path / "src"
    run_cli("sample", "dicom-folder", str(src), "--n", "2")
    (src / "notes.txt").write_text("not dicom")
    out = run_cli(
        "convert", "dicom-folder", str(src), "-o", str(tmp_path / "o"), "--strict", "--no-deid"
    )
    assert out.returncode == 1 and "notes.txt" in out.stderr  # under de-identification: a hash
    ok = run_cli("convert", "dicom-folder", str(src), "-o", str(tmp_path / "o2"))
    assert ok.returncode == 0 and "1 input(s) quarantined" in ok.stderr
    # Both ways on that the hint names work from the staged run.
    base = ["convert", "dicom-folder", str(src), "-o", str(tmp_path / "o"), "--no-deid"]
    go_on = run_cli(*base, "--resume")
    assert go_on.returncode == 0 and "1 input(s) quarantined" in go_on.stderr, go_on.stderr
    assert run_cli(*base, "--strict", "--overwrite").returncode == 1
    (src / "notes.txt").unlink()
    fixed = run_cli(*base, "--strict", "--overwrite")
    assert fixed.returncode == 0, fixed.stderr


def test_list_json() -> None:
    rows = json.loads(run_cli("list", "--json").stdout)
    names = {r["name"] for r in rows}
    assert "dicom-folder" in names
    assert all(r["status"] for r in rows)


def test_quickstart_runs_the_main_job(tmp_path: Path) -> None:
    out = run_cli("quickstart", "--dir", str(tmp_path / "qs"), "--n", "3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] and {d["adapter"] for d in result["datasets"]} >= {"dicom-folder"}
    assert all(d["valid"] for d in result["datasets"])


def test_quickstart_prints_its_next_commands_whole_in_a_narrow_pipe(tmp_path: Path) -> None:
    """The 'Try next' commands are meant to be copied: never wrapped mid-command."""
    out = run_cli("quickstart", "--dir", str(tmp_path / "qs"), "--n", "3", env={"COLUMNS": "60"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:1] == ["dicom-folder"] for line in lines)  # names never cut
    snippet = next(line for line in lines if "python -c" in line)
    assert snippet.strip().endswith("print(ds.table('samples').collect())\"")
    assert any(line.strip().startswith("open file://") and "in a browser" in line for line in lines)

    too_few = run_cli("quickstart", "--dir", str(tmp_path / "qs2"), "--n", "2")
    assert too_few.returncode == 2
    assert "--n" in too_few.stderr and not (tmp_path / "qs2").exists()


def test_convert_checks_its_arguments_before_writing_anything(tmp_path: Path) -> None:
    """No output folder, no key, for a run refused up front; each refusal is a usage error."""
    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    cases = {
        "missing source": (["convert", "dicom-folder", str(tmp_path / "nosuch"), "-o"], 2),
        "unknown option": (["convert", "dicom-folder", str(src), "-O", "nope=1", "-o"], 2),
        "output inside the source": (["convert", "dicom-folder", str(src), "-o"], 2),
        "contradiction": (
            ["convert", "dicom-folder", str(src), "--no-deid", "--deid-key-file", "k", "-o"],
            2,
        ),
    }
    for what, (args, code) in cases.items():
        out = tmp_path / "out" if what != "output inside the source" else src / "out"
        result = run_cli(*args, str(out))
        assert result.returncode == code, (what, result.stderr)
        assert "Traceback" not in result.stderr and not out.exists(), what
    assert not list(src.parent.glob("**/*.deid-key"))
    for args in (["convert", "dicom-folder", str(src), "-o"], ["sample", "dicom-folder"]):
        result = run_cli(*args, str(a_file))
        assert result.returncode == 2 and "is a file" in result.stderr, result.stderr
    stores = {
        "memory://cli/out": "lost at exit",
        "nosuchproto://bucket/out": "not a storage protocol",
    }
    for url, said in stores.items():
        result = run_cli("convert", "dicom-folder", str(src), "-o", url)
        assert result.returncode == 2 and said in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_convert_json_reports_a_new_key_and_keeps_path_map_private(tmp_path: Path) -> None:
    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    (src / "not-dicom.txt").write_text("hello")  # one quarantined input, so a path map is kept
    out = tmp_path / "out"
    result = run_cli("convert", "dicom-folder", str(src), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["deid_key_created"] == str(out / "dicom-folder.deid-key")
    assert (out / "dicom-folder.deid-key").stat().st_mode & 0o777 == 0o600
    paths = out / "dicom-folder-1.0.quarantine-paths.jsonl"
    assert summary["quarantined"] == 1 and paths.stat().st_mode & 0o777 == 0o600
    again = run_cli("convert", "dicom-folder", str(src), "-o", str(out), "--version", "2")
    assert again.returncode == 0 and "created a new" not in again.stderr  # the key is reused
    human = run_cli("convert", "dicom-folder", str(src), "-o", str(tmp_path / "o2"))
    assert "warning: created a new de-identification key at" in human.stderr


def test_ctrl_c_says_how_to_go_on_and_resume_finishes(tmp_path: Path) -> None:
    import signal
    import sys

    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "30").returncode == 0
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "meddata.cli", "convert", "dicom-folder", str(src), "-o", str(out)]
    cmd += ["--no-deid", "--workers", "1", "-O", "files_per_unit=1"]
    journal = out / "dicom-folder" / "1.0" / "_staging" / "journal.jsonl"
    code, err = interrupt_after_units(cmd, journal, 2, signal.SIGINT, capture=True)
    assert code == 130, err
    assert "Interrupted: nothing was published" in err and "--resume" in err
    assert "Traceback" not in err and not (out / "dicom-folder" / "1.0" / "meddata.json").exists()
    done = run_cli(*cmd[3:], "--resume")
    assert done.returncode == 0, done.stderr
    assert run_cli("validate", str(out / "dicom-folder" / "1.0")).returncode == 0


def test_debug_is_accepted_after_the_command(tmp_path: Path) -> None:
    result = run_cli("info", str(tmp_path / "nothing"), "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_json_mode_reports_failures_as_json_on_stdout(tmp_path: Path) -> None:
    for args in (
        ["info", str(tmp_path / "nothing"), "--json"],
        ["convert", "dicom-folder", str(tmp_path / "nosuch"), "-o", str(tmp_path / "o"), "--json"],
    ):
        result = run_cli(*args)
        assert result.returncode == 2 and "error:" in result.stderr  # arguments naming nothing
        report = json.loads(result.stdout)
        assert report["ok"] is False and report["error"] and report["hint"]


def test_bad_option_syntax_and_empty_version_are_usage_errors(tmp_path: Path) -> None:
    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    bad = run_cli("convert", "dicom-folder", str(src), "-o", str(tmp_path / "o"), "-O", "x")
    assert bad.returncode == 2 and "-O KEY=VALUE" in bad.stderr
    empty = run_cli("convert", "dicom-folder", str(src), "-o", str(tmp_path / "o"), "--version", "")
    assert empty.returncode == 2 and "cannot be a dataset version" in empty.stderr
    assert not (tmp_path / "o").exists()


def test_sample_refuses_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("x")
    result = run_cli("sample", "dicom-folder", str(tmp_path))
    assert result.returncode == 2 and "not empty" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_datasheet_strict_without_check_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("datasheet", str(tmp_path), "--strict")
    assert result.returncode == 2 and "--strict only applies to --check" in result.stderr


def test_file_urls_are_local_paths_for_sources_and_datasheet_folders(tmp_path: Path) -> None:
    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    out = tmp_path / "out"
    done = run_cli("convert", "dicom-folder", src.as_uri(), "-o", out.as_uri(), "--no-deid")
    assert done.returncode == 0, done.stderr
    sheet = run_cli(
        "datasheet",
        str(out / "dicom-folder"),
        "--format",
        "md",
        "-o",
        (tmp_path / "sheet").as_uri(),
    )
    assert sheet.returncode == 0, sheet.stderr
    assert (tmp_path / "sheet" / "datasheet.md").exists() and not Path("file:").exists()
    remote = run_cli("convert", "dicom-folder", "s3://bucket/src", "-o", str(tmp_path / "o2"))
    assert remote.returncode == 2 and "must be on this machine" in remote.stderr


def test_a_refused_conversion_of_a_published_version_makes_no_key(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    assert run_cli("convert", "dicom-folder", str(src), "-o", str(out), "--no-deid").returncode == 0
    again = run_cli("convert", "dicom-folder", str(src), "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert not (out / "dicom-folder.deid-key").exists()


def test_warnings_are_one_line_in_the_cli_s_own_form(tmp_path: Path) -> None:
    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "3").returncode == 0
    key = tmp_path / "site.key"
    key.write_bytes(bytes(range(32)))
    key.chmod(0o644)
    done = run_cli(
        "convert", "dicom-folder", str(src), "-o", str(tmp_path / "o"), "--deid-key-file", str(key)
    )
    assert done.returncode == 0, done.stderr
    assert "warning: The de-identification key file" in done.stderr
    assert "UserWarning" not in done.stderr and ".py:" not in done.stderr


def test_a_resumed_run_keeps_the_reference_year_its_first_run_recorded(tmp_path: Path) -> None:
    import signal
    import sys

    src = tmp_path / "src"
    assert run_cli("sample", "dicom-folder", str(src), "--n", "30").returncode == 0
    out = tmp_path / "out"
    key = tmp_path / "k"
    key.write_bytes(b"r" * 32)
    key.chmod(0o600)
    cmd = [sys.executable, "-m", "meddata.cli", "convert", "dicom-folder", str(src), "-o", str(out)]
    cmd += ["--deid-key-file", str(key), "--workers", "1", "-O", "files_per_unit=1"]
    journal = out / "dicom-folder" / "1.0" / "_staging" / "journal.jsonl"
    code, _ = interrupt_after_units([*cmd, "--reference-year", "2020"], journal, 2, signal.SIGINT)
    assert code == 130
    done = run_cli(*cmd[3:], "--resume")  # no --reference-year: the staged one is kept
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "dicom-folder" / "1.0" / "meddata.json").read_text())
    assert manifest["deid"]["profile"]["options"]["reference_year"] == 2020


def test_a_source_with_nothing_convertible_leaves_no_version_folder(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "Doe_John.txt").write_text("not DICOM")
    failed = run_cli("convert", "dicom-folder", str(src), "-o", str(out))
    assert failed.returncode == 1 and "nothing was published" in failed.stderr
    assert "Doe_John" not in failed.stderr
    mapping = out / "dicom-folder-1.0.quarantine-paths.jsonl"
    assert f"The rejected inputs' paths are in {mapping}." in failed.stderr.replace("\n", " ")
    assert "Doe_John.txt" in mapping.read_text()  # the operator's map, outside any dataset
    assert not (out / "dicom-folder" / "1.0").exists()
