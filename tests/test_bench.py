"""`optlab bench` runs (quick sizes, so it cannot rot) and its tables reach the README only by command."""

import json

from optlab.bench import README_BEGIN, README_END, update_readme
from optlab.cli import main


def test_bench_quick_measures_every_row_and_saves_its_table(capsys, tmp_path):
    assert main(["bench", "--quick", "--threads", "1", "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in ("(a)", "(p)", "(b)", "(c)", "(d)", "(e)", "(s)"):
        assert f"| {row} |" in out, row
    assert "load average" in out and "textbook" in out and "cores" in out
    saved = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    assert saved["quick"] and saved["table"] in out
    assert saved["s"]["first_output_s"] is not None and saved["p"]["optlab_s"] > 0


def _saved(folder, i, quick=False):
    table = f"optlab bench on cpu, 2026-11-0{i} 10:00 UTC: machine; load average 0.0{i} before\n| row {i} |\n|---|"
    (folder / f"bench-2026110{i}-100000.json").write_text(json.dumps({"quick": quick, "table": table}))


def test_the_readme_shows_the_last_three_full_tables_between_its_markers(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    for i in range(1, 6):
        _saved(results, i, quick=(i == 5))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{README_BEGIN}\nold table\n{README_END}\nafter\n")
    assert main(["bench", "--readme", str(readme), "--results", str(results)]) == 0
    text = readme.read_text()
    section = text.split(README_BEGIN)[1].split(README_END)[0]
    assert "old table" not in section and "| row 1 |" not in section and "| row 5 |" not in section  # quick: not shown
    assert [f"| row {i} |" in section for i in (2, 3, 4)] == [True] * 3
    assert section.index("row 2") < section.index("row 3") < section.index("row 4")
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{README_END}\nafter\n")
    update_readme(readme, results)   # idempotent
    assert readme.read_text() == text


def test_a_readme_without_markers_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "README.md").write_text("# no markers\n")
    assert main(["bench", "--readme", str(tmp_path / "README.md"), "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
