"""A benchmark rewrites only its own section of docs/BENCHMARKS.md."""

from pathlib import Path

from bench.report import write_section


def test_a_section_is_replaced_and_the_others_are_kept(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## A\n\nold a\n\n## B\n\nb stays\n", encoding="utf-8")
    write_section("## A", "## A\n\nnew a\n", doc)
    assert doc.read_text(encoding="utf-8") == "# Benchmarks\n\n## A\n\nnew a\n\n## B\n\nb stays\n"


def test_a_missing_section_is_appended(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    write_section("## C", "## C\n\nc\n", doc)
    assert doc.read_text(encoding="utf-8") == "# Benchmarks\n\n## C\n\nc\n"
