"""``dpzero adql check``: one query per file, OK or the error, exit 1 if any is invalid."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dpzero.cli import main


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_check_reports_each_file(tmp_path: Path) -> None:
    good = write(
        tmp_path,
        "good.adql",
        "SELECT TOP 10 objectId, ra, dec\nFROM dp01_dc2_catalogs.object\n"
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 62, -37, 0.1)) = 1\n",
    )
    bad = write(tmp_path, "bad.adql", "SELECT ra,\n dec FORM dp01_dc2_catalogs.object\n")
    result = CliRunner().invoke(main, ["adql", "check", str(good), str(bad)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{good}: OK",
        f"{bad}: line 2, column 6: expected FROM near 'FORM'",
    ]


def test_check_exits_zero_when_all_valid(tmp_path: Path) -> None:
    files = [write(tmp_path, f"q{i}.sql", f"SELECT TOP {i} * FROM t") for i in range(3)]
    result = CliRunner().invoke(main, ["adql", "check", *map(str, files)])
    assert result.exit_code == 0
    assert result.output.count(": OK") == 3


def test_check_needs_no_store_and_reports_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.adql"
    binary = tmp_path / "binary.adql"
    binary.write_bytes(b"\xff\xfe\x00")
    result = CliRunner().invoke(main, ["adql", "check", str(missing), str(binary)])
    assert result.exit_code == 1
    assert f"{missing}: cannot read the file" in result.output
    assert f"{binary}: cannot read the file" in result.output


def test_check_needs_a_file() -> None:
    result = CliRunner().invoke(main, ["adql", "check"])
    assert result.exit_code == 2
