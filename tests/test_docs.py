"""The front door and the documentation site: the README stays short and hand-written, the site builds
with --strict (a broken link, anchor or API reference fails it), every relative link resolves, and each
generated block lives in the docs page its Makefile target writes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# words that only make sense inside the project's history, or a source never named
INTERNAL = [r"\bissues?\b", r"\bbrief\b", r"\bthe lecture\b", r"\bworkstream", r"\brow \(\w\)", r"\bsession\b"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def markdown_pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # links in code are code
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def heading_anchors(page: Path) -> set[str]:
    """GitHub's and MkDocs' anchors for the page's headings: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    }


def test_the_readme_is_a_short_front_door_without_generated_blocks_or_internal_words():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert not re.search(r"<!--\s*[\w-]+:(begin|end)", text), "generated blocks belong in docs/results/"
    for word in INTERNAL:
        assert not re.search(word, text, flags=re.I), f"README uses {word!r}"
    for command in ("make install", "make test", "optlab run", "optlab sweep", "optlab report", "optlab ui"):
        assert command in text, command
    assert "LeCun" in text and "3Blue1Brown" in text


def test_the_architecture_page_stays_short():
    assert len((DOCS / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_every_relative_link_in_the_readme_and_the_docs_resolves():
    broken = []
    for page in markdown_pages():
        for target in relative_links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in heading_anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
    assert len(relative_links(README)) >= 10  # the README does point into the docs


def test_each_generated_block_is_in_the_docs_page_its_command_writes():
    from optlab.bench import BLOCK_BEGIN, BLOCK_END
    from optlab.reports.markdown import BEGIN, END, MODERN_BEGIN, MODERN_END, MORE_BEGIN, MORE_END

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = dict(re.findall(r"^([\w-]+):\n(?:\t.*\n)*?\t.*--into (\S+)", makefile, flags=re.M))
    assert set(targets) == {"results", "bench-tables", "cluster-bench"}, targets
    markers = {
        "results": [(BEGIN, END), (MORE_BEGIN, MORE_END), (MODERN_BEGIN, MODERN_END)],
        "bench-tables": [(BLOCK_BEGIN, BLOCK_END)],
        "cluster-bench": [("<!-- cluster-bench:begin", "<!-- cluster-bench:end -->")],
    }
    for target, page in targets.items():
        assert page.startswith("docs/results/"), (target, page)
        text = (ROOT / page).read_text(encoding="utf-8")
        for begin, end in markers[target]:
            assert text.count(begin) == 1 and text.count(end) == 1, (page, begin)
            block = text[text.index(begin) + len(begin) : text.index(end)]
            assert "|---" in block, f"{page}: the block after {begin!r} holds no table"


def test_the_readme_sweep_example_is_a_valid_experiment_file(tmp_path):
    text = README.read_text(encoding="utf-8")
    toml = re.search(r"```toml\n(.*?)```", text, flags=re.S).group(1)
    (tmp_path / "first.toml").write_text(toml)
    env = {**os.environ, "OPTLAB_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, "-m", "optlab", "sweep", "first.toml", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert "12 points + 10 reruns" in out.stdout  # what the README says the file holds


def test_the_site_builds_with_strict(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists() and shutil.which("mkdocs") is None:
        pytest.fail("mkdocs is not installed: `make install` installs it with the dev extras")
    site = tmp_path / "site"
    out = subprocess.run(
        [str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (site / "index.html").exists() and (site / "results" / "speed" / "index.html").exists()
    reference = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert "RunConfig" in reference and "from_dict" in reference  # mkdocstrings rendered the docstrings


# a dry run as a user's shell would do it, also when the suite itself runs under `make test`
MAKE_DRY_RUN = ["make", "--no-print-directory", "-n"]
PLAIN_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}


def test_every_declared_make_target_has_a_rule():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = {name for line in re.findall(r"^\.PHONY:(.*)$", makefile, flags=re.M) for name in line.split()}
    assert {"install", "test", "sweep", "sweep-estimate", "glossary", "report"} <= phony
    missing = []
    for target in sorted(phony):
        out = subprocess.run(
            MAKE_DRY_RUN + [target], cwd=ROOT, capture_output=True, text=True, timeout=60, env=PLAIN_ENV
        )
        if out.returncode != 0 or "No rule to make target" in out.stderr:
            missing.append(f"{target}: {out.stderr.strip()}")
    assert not missing, "\n".join(missing)


def test_the_sweep_estimate_target_passes_only_arguments_its_script_accepts():
    out = subprocess.run(
        MAKE_DRY_RUN + ["sweep-estimate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=PLAIN_ENV,
    )
    args = out.stdout.strip().split("scripts/sweep_estimate.py", 1)[1].split()
    files = [a for a in args if a.endswith(".toml")]
    rest = [a for a in args if not a.endswith(".toml")]
    assert files and all((ROOT / f).exists() for f in files), files
    assert rest == ["--workers", "2"], rest
