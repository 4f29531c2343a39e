"""A target that is broken where the fuzzer starts (wildcard addresses in its
config replies, IDENTIFY unanswered) is fuzzed with what can be learnt, and
its faults are findings, not a refusal. Needs root: a lab and the reference
target with a quirk, driven through the command line."""

from __future__ import annotations

import json
import subprocess
import sys

from aoeconform.lab import Lab, make_sparse_image

from conftest import _up_or_skip, need_root, unique_lab_name


def _fuzz(lab, out, *extra):
    return subprocess.run([sys.executable, "-m", "aoeconform", "fuzz", "--target", f"{lab.host_if}:1.2", "--seconds", "1.5",
                           "--seed", "5", "--out", str(out), *extra], capture_output=True, text=True, timeout=120)


def _signatures(out) -> list:
    with open(out / "fuzz.json") as f:
        return [f["signature"] for f in json.load(f)["findings"]]


def test_wildcard_replies_and_unanswered_identify_are_fuzzed(tmp_path):
    need_root()
    lab = _up_or_skip(Lab(unique_lab_name()))
    try:
        image = make_sparse_image(tmp_path / "disk.img", "8M")
        target = lab.start_reference_target(1, 2, image, quirks=["wildcard-reply-address"])
        try:
            done = _fuzz(lab, tmp_path / "wild")
        finally:
            target.stop()
        assert done.returncode == 1, done.stdout + done.stderr  # findings, not a usage error or "did not answer"
        assert "answered as 65535.255" in done.stderr and "fuzzing 1.2" in done.stderr
        assert any(s.startswith("rule11/") for s in _signatures(tmp_path / "wild")), _signatures(tmp_path / "wild")

        target = lab.start_reference_target(1, 2, image, quirks=["identify-device-bits-rejected"])
        try:
            done = _fuzz(lab, tmp_path / "noident", "--allow-write")
        finally:
            target.stop()
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert "capacity is unknown" in done.stderr and "fuzzing without writes" in done.stderr
        assert (tmp_path / "noident" / "fuzz.json").exists()
    finally:
        lab.down()
