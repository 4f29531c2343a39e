"""`aoeconform io`: argument checks without a network, and the real thing
against vblade in a lab (the CLI run as a subprocess, as a user runs it)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from aoeconform.cli import main
from aoeconform.cli.io import PATTERN_BLOCK_SECTORS, pattern
from aoeconform.errors import EXIT_UNREACHABLE, EXIT_USAGE

SECTOR = 512


def aoeconform(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "aoeconform", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def sha256_file(path, length=None):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left is None or left > 0:
            block = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            digest.update(block)
            if left is not None:
                left -= len(block)
    return digest.hexdigest()


# --- no network --------------------------------------------------------------
def test_pattern_is_the_same_whatever_range_it_is_made_in():
    whole = pattern(7, 0, 3 * PATTERN_BLOCK_SECTORS)
    assert len(whole) == 3 * PATTERN_BLOCK_SECTORS * SECTOR
    part = pattern(7, 50, 100)
    assert part == whole[50 * SECTOR:150 * SECTOR]
    assert pattern(8, 50, 100) != part
    # every sector differs from its neighbours (a misplaced write shows)
    sectors = {whole[i * SECTOR:(i + 1) * SECTOR] for i in range(3 * PATTERN_BLOCK_SECTORS)}
    assert len(sectors) == 3 * PATTERN_BLOCK_SECTORS


def test_write_and_verify_refuse_without_yes(capsys, tmp_path):
    data = tmp_path / "d.bin"
    data.write_bytes(bytes(1024))
    assert main(["io", "write", "--target", "aoecnone0h", "--in", str(data)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--yes" in err
    assert main(["io", "verify", "--target", "aoecnone0h"]) == EXIT_USAGE
    assert "--yes" in capsys.readouterr().err


def test_write_refuses_a_partial_sector(capsys, tmp_path):
    data = tmp_path / "odd.bin"
    data.write_bytes(bytes(1000))
    assert main(["io", "write", "--target", "aoecnone0h", "--in", str(data), "--yes"]) == EXIT_USAGE
    assert "512-byte sectors" in capsys.readouterr().err


def test_bad_probability_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["io", "identify", "--target", "aoecnone0h", "--loss", "5"])
    assert exit_info.value.code == EXIT_USAGE
    assert "probability" in capsys.readouterr().err


def test_missing_interface_is_exit_2_in_one_line(require_root):
    result = aoeconform("io", "identify", "--target", "aoecnosuch0")
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_no_answer_is_exit_3_in_one_line(make_lab):
    lab = make_lab()  # nothing runs on the target end
    result = aoeconform("io", "read", "--target", f"{lab.host_if}:1.2", "--count", "1", "--out", os.devnull,
                        "--timeout", "0.3")
    assert result.returncode == EXIT_UNREACHABLE
    assert result.stderr.strip().count("\n") == 0 and "did not answer" in result.stderr


# --- against vblade ------------------------------------------------------------
def test_identify_names_vblade(vblade_lab_jumbo):
    result = aoeconform("io", "identify", "--target", vblade_lab_jumbo.host_if, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["target"] == "1.2"
    assert info["capacity_bytes"] == vblade_lab_jumbo.image_size
    assert info["sectors_per_frame"] == 17 and info["lba48"]


def test_read_of_the_whole_image_equals_the_file(vblade_lab_jumbo, tmp_path):
    out = tmp_path / "read.img"
    sectors = vblade_lab_jumbo.image_size // SECTOR
    result = aoeconform("io", "read", "--target", f"{vblade_lab_jumbo.host_if}:1.2",
                        "--lba", 0, "--count", sectors, "--out", out)
    assert result.returncode == 0, result.stderr
    assert sha256_file(out) == sha256_file(vblade_lab_jumbo.image_path)
    line = result.stdout.strip()
    assert line.count("\n") == 0
    for word in ("MB/s", "retransmissions", "duplicates", "late replies", "RTT avg"):
        assert word in line


def test_write_then_read_a_range_through_impairment(vblade_lab_jumbo, tmp_path):
    data = os.urandom(2 << 20)
    src, back = tmp_path / "in.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    lba = 8192  # past the random bytes the fixture wrote
    impair = ["--loss", "0.05", "--dup", "0.05", "--reorder", "0.05", "--seed", "11"]
    result = aoeconform("io", "write", "--target", vblade_lab_jumbo.host_if, "--lba", lba, "--in", src, "--yes", *impair)
    assert result.returncode == 0, result.stderr
    assert "injected:" in result.stdout
    assert vblade_lab_jumbo.read_image(lba * SECTOR, len(data)) == data
    result = aoeconform("io", "read", "--target", vblade_lab_jumbo.host_if, "--lba", lba, "--count", len(data) // SECTOR,
                        "--out", back, "--json", *impair)
    assert result.returncode == 0, result.stderr
    assert back.read_bytes() == data
    summary = json.loads(result.stdout)
    assert summary["counters"]["retransmissions"] > 0
    assert summary["impairment"]["recv"]["dropped"] > 0


def test_verify_writes_the_seeded_pattern(vblade_lab_jumbo):
    lba, count = 16384, 4096
    result = aoeconform("io", "verify", "--target", vblade_lab_jumbo.host_if, "--lba", lba, "--count", count,
                        "--seed", 5, "--yes", "--loss", "0.02")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verify")
    assert vblade_lab_jumbo.read_image(lba * SECTOR, count * SECTOR) == pattern(5, lba, count)


def test_read_past_the_end_is_a_usage_error(vblade_lab_jumbo):
    sectors = vblade_lab_jumbo.image_size // SECTOR
    result = aoeconform("io", "read", "--target", vblade_lab_jumbo.host_if, "--lba", sectors - 1, "--count", 2,
                        "--out", os.devnull)
    assert result.returncode == EXIT_USAGE
    assert "past the end" in result.stderr
