"""`optlab bench` runs (quick sizes, so it cannot rot) and its tables reach docs/results/speed.md only by command."""

import json

import pytest

from optlab.bench import BENCH_BLOCK, BLOCK_BEGIN, BLOCK_END, saved_tables
from optlab.cli import main
from optlab.markdown_block import write_block


@pytest.mark.slow
def test_bench_quick_measures_every_row_and_saves_its_table(capsys, tmp_path):
    assert main(["bench", "--quick", "--threads", "1", "--save", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in ("(a)", "(p)", "(b)", "(c)", "(d)", "(e)", "(s)", "(g)", "(w)"):
        assert f"| {row} |" in out, row
    assert "--diagnostics cheap" in out and "--diagnostics full" in out and "ms/evaluation" in out
    assert "load average" in out and "textbook" in out and "cores" in out
    saved = json.loads(next(tmp_path.glob("bench-*.json")).read_text())
    assert saved["quick"] and saved["table"] in out
    assert saved["s"]["first_output_s"] is not None and saved["p"]["optlab_s"] > 0
    # (w): the smoke sweep's efficiency as its parent run recorded it; its parts add up to the slots' time
    sweep = saved["w"]
    assert sweep["file"] == "experiments/smoke.toml" and sweep["runs"] == 12
    assert 0 < sweep["efficiency"] == pytest.approx(sweep["training_s"] / (2 * sweep["seconds"]), abs=0.01)
    assert sum(sweep["rest"].values()) + sweep["efficiency"] == pytest.approx(1.0, abs=0.01)
    assert sweep["peak_rss_mb"]["sweep"] > 50 and sweep["peak_rss_mb"]["worker"] > 50


def _saved(folder, i, quick=False):
    table = f"optlab bench on cpu, 2026-11-0{i} 10:00 UTC: machine; load average 0.0{i} before\n| row {i} |\n|---|"
    (folder / f"bench-2026110{i}-100000.json").write_text(json.dumps({"quick": quick, "table": table}))


def test_the_speed_page_shows_the_last_three_full_tables_between_its_markers(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    for i in range(1, 6):
        _saved(results, i, quick=(i == 5))
    page = tmp_path / "speed.md"
    page.write_text(f"# x\n\nbefore\n{BLOCK_BEGIN}\nold table\n{BLOCK_END}\nafter\n")
    assert main(["bench", "--into", str(page), "--results", str(results)]) == 0
    text = page.read_text()
    section = text.split(BLOCK_BEGIN)[1].split(BLOCK_END)[0]
    assert "old table" not in section and "| row 1 |" not in section and "| row 5 |" not in section  # quick: not shown
    assert [f"| row {i} |" in section for i in (2, 3, 4)] == [True] * 3
    assert section.index("row 2") < section.index("row 3") < section.index("row 4")
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{BLOCK_END}\nafter\n")
    write_block(page, BENCH_BLOCK, saved_tables(results))  # idempotent
    assert page.read_text() == text


def test_a_page_without_markers_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "speed.md").write_text("# no markers\n")
    assert main(["bench", "--into", str(tmp_path / "speed.md"), "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_sweep_efficiency_block_goes_between_its_markers_in_any_markdown_file(tmp_path, capsys):
    from optlab.bench import SWEEP_BLOCK
    from optlab.markdown_block import markers

    results = tmp_path / "results"
    results.mkdir()
    for i in range(1, 5):
        row = {
            "file": "benchmarks/sweep_efficiency.toml",
            "runs": 54,
            "workers": 2,
            "seconds": 100.0 + i,
            "process_s": 104.0,
            "training_s": 80.0,
            "efficiency": 0.7 + i / 100,
            "rest": {"seed groups": 0.1, "idle or untimed": 0.05},
            "peak_rss_mb": {"sweep": 500.0, "worker": 300.0},
        }
        (results / f"bench-2026110{i}-100000.json").write_text(
            json.dumps(
                {
                    "quick": False,
                    "table": "t",
                    "date": f"2026-11-0{i}",
                    "machine": "m",
                    "load_before": "0.1",
                    "load_after": "0.2",
                    **({"w": row} if i > 1 else {}),
                }
            )
        )
    begin, end = markers(SWEEP_BLOCK)
    page = tmp_path / "speed.md"
    page.write_text(f"# Speed\n\n{begin}\nold\n{end}\n\nafter\n")
    assert main(["bench", "--sweep-block", str(page), "--results", str(results)]) == 0
    text = page.read_text()
    block = text.split(begin)[1].split(end)[0]
    assert "old" not in block and "| 1 | 2026-11-02 |" in block and "| 3 | 2026-11-04 |" in block
    assert "| 74% |" in block and "seed groups 10%" in block and "2026-11-01" not in block
    assert text.startswith("# Speed\n\n") and text.endswith(f"{end}\n\nafter\n")
    (tmp_path / "bare.md").write_text("# none\n")
    assert main(["bench", "--sweep-block", str(tmp_path / "bare.md"), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "<!-- sweep-efficiency:begin" in err
