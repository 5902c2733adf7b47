"""`spe synth` on the command line: progress on stderr, a summary on stdout, one-line errors
with exit code 2 for bad options, and nothing written on error."""

import pyarrow.parquet as pq

from hub.cli import main


def run(tmp_path, capsys, *args):
    code = main(["--home", str(tmp_path / "home"), "synth", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_writes_tables_and_reports_progress(tmp_path, capsys):
    code, out, err = run(tmp_path, capsys, "--persons", "1_200", "--out", str(tmp_path / "d"), "--seed", "3",
                         "--workers", "1", "--part-persons", "500")
    assert code == 0
    assert "synth: 3/3 parts" in err and "rows written" in err
    assert "measurement" in out and "rows/s" in out
    assert pq.read_metadata(tmp_path / "d" / "person.parquet").num_rows == 1200


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    cases = [
        (["--persons", "0"], "--persons"),
        (["--persons", "ten"], "--persons: must be a whole number"),
        (["--persons", "5", "--workers", "0"], "--workers"),
        (["--persons", "5", "--chunk-persons", "-1"], "--chunk-persons"),
        (["--persons", "5", "--seed", "1.5"], "--seed"),
    ]
    for args, message in cases:
        code, out, err = run(tmp_path, capsys, *args, "--out", str(tmp_path / "bad"))
        assert code == 2, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("spe: error: ") and message in lines[0], err
    assert not (tmp_path / "bad").exists()


def test_existing_output_without_force_is_refused(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    code, _, err = run(tmp_path, capsys, "--persons", "5", "--out", str(tmp_path / "full"))
    assert code == 2 and "--out" in err and "--force" in err
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
