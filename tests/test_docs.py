"""The documentation: README.md stays one screen, every relative link and
#anchor of README.md, docs/*.md and kernels/README.md resolves, and the
Python blocks of README.md and docs/python-api.md run."""
import os
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PYTHON_API = ROOT / "docs" / "python-api.md"
README_MAX_BYTES = 12_000

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]*)>?(?:\s+[\"'][^\"']*[\"'])?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)


def doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "kernels" / "README.md"]


def prose(text: str) -> str:
    """The text outside fenced code blocks and code spans, where links count."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase; drop all but letters, digits,
    spaces, hyphens and underscores; spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading counts by its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a markdown file, duplicates as -1, -2, ..."""
    seen: Counter = Counter()
    result = set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        result.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return result


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """`FILE: target (why)` for each relative link of `path` that does not resolve."""
    broken = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        if re.match(r"(?i)(https?:|mailto:)", target):
            continue
        where, _, anchor = target.partition("#")
        file = path.parent / where if where else path
        name = f"{os.path.relpath(path, root)}: {target}"
        if not where and not anchor:
            broken.append(f"{name} (empty link)")
        elif not file.exists():
            broken.append(f"{name} (no such file or folder)")
        elif anchor and file.suffix != ".md":
            broken.append(f"{name} (an anchor into a file that is not markdown)")
        elif anchor and anchor not in anchors(file):
            broken.append(f"{name} (no heading with the anchor #{anchor} in {os.path.relpath(file, root)})")
    return broken


def test_slugs_follow_github():
    assert slug("Vocabularies: characters, bytes, words") == "vocabularies-characters-bytes-words"
    assert slug("Deeper models: what 600 s on a CPU reaches") == "deeper-models-what-600-s-on-a-cpu-reaches"
    assert slug("`metrics.jsonl` and rank_0") == "metricsjsonl-and-rank_0"
    assert slug("Fewer launches per step: CUDA graphs") == "fewer-launches-per-step-cuda-graphs"


def test_duplicate_headings_get_numbered_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A\n\n## Notes\n\n```\n# not a heading\n```\n\n## Notes\n\n## Notes\n", encoding="utf-8")
    assert anchors(page) == {"a", "notes", "notes-1", "notes-2"}


def test_a_broken_link_is_named(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#other-page) [ok](#page) [web](https://example.com/x#y)\n"
                    "`[code](nowhere.md)` [gone](missing.md) [bad anchor](other.md#nothing) [bad here](#nope)\n",
                    encoding="utf-8")
    broken = broken_links(page, root=tmp_path)
    assert [b.split(" (")[0] for b in broken] == ["page.md: missing.md", "page.md: other.md#nothing", "page.md: #nope"]


def test_every_relative_link_and_anchor_resolves():
    files = doc_files()
    assert all(f.exists() for f in files), [str(f) for f in files if not f.exists()]
    assert (ROOT / "docs" / "architecture.md").exists()
    broken = [b for f in files for b in broken_links(f)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_is_one_screen():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, more than {README_MAX_BYTES}: move detail into docs/"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def run_blocks(path: Path, tmp_path, monkeypatch):
    """Every ```python block of `path`, in order, in one namespace each, in a fresh directory."""
    blocks = python_blocks(path)
    assert blocks, f"no python block in {path.name}"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(path.relative_to(ROOT)), "exec"), {})  # noqa: S102
    assert (tmp_path / "runs" / "api" / "checkpoint.npz").exists()


@pytest.mark.slow  # trains a model (seconds)
def test_the_readme_python_examples_run(tmp_path, monkeypatch):
    """Every ```python block of the README, in order, in a fresh directory."""
    run_blocks(README, tmp_path, monkeypatch)


@pytest.mark.slow  # trains a model (seconds)
def test_the_python_api_page_examples_run(tmp_path, monkeypatch):
    """docs/python-api.md's blocks (a few seconds on two cores)."""
    run_blocks(PYTHON_API, tmp_path, monkeypatch)
