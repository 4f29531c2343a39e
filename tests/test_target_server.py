"""The target's shell: the serve loop in-process over a memory link, and the
command-line target in a lab namespace (signals, --sync durability)."""

from __future__ import annotations

import os
import signal

import pytest

from aoeconform.cli import main
from aoeconform.lab import Lab
from aoeconform.target.drivers import FrameBuilder, VethDriver
from aoeconform.target.image import MemoryImage, parse_size
from aoeconform.target.logic import Target
from aoeconform.target.server import run_in_thread
from aoeconform.transport.memory import MemoryLink
from conftest import need_root, unique_lab_name

TARGET_MAC = bytes.fromhex("02aaaaaaaa02")
HOST_MAC = bytes.fromhex("020000000001")


def test_serve_loop_over_memory_link():
    link = MemoryLink()
    target_end = link.endpoint(TARGET_MAC, mtu=9000)
    host = link.endpoint(HOST_MAC, mtu=9000)
    target = Target(MemoryImage(1 << 20), shelf=1, slot=2, mac=TARGET_MAC, mtu=9000)
    server, thread = run_in_thread(target, target_end)
    try:
        announcement = host.recv(2)
        assert announcement is not None and announcement[19] == 1 and announcement[0:6] == b"\xff" * 6
        fb = FrameBuilder(TARGET_MAC, HOST_MAC)
        data = bytes(range(256)) * 2 * 17
        for frame in [fb.ata(0x34, 5, 17, data=data, aflags=0x43)]:
            host.send(frame)
            reply = host.recv(2)
            assert reply is not None and reply[27] == 0x40
        host.send(fb.ata(0x24, 5, 17))
        reply = host.recv(2)
        assert reply[36:] == data
    finally:
        server.stop()
        thread.join(5)
        server.close()
    assert not thread.is_alive()


@pytest.mark.parametrize("text,size", [("64M", 64 << 20), ("1G", 1 << 30), ("4096", 4096), ("512KiB", 512 << 10)])
def test_parse_size(text, size):
    assert parse_size(text) == size


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["target", str(tmp_path / "missing.img"), "--iface", "lo", "--shelf", "1", "--slot", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]
    assert main(["target", "mem:1M", "--shelf", "1", "--slot", "2"]) == 2
    assert main(["target", "mem:1M", "--iface", "lo", "--shelf", "65535", "--slot", "2"]) == 2


@pytest.fixture
def veth(tmp_path):
    need_root()
    labs = {}
    d = VethDriver(str(tmp_path), lambda mtu: Lab(unique_lab_name(), mtu=mtu).up(), labs)
    yield d
    d.stop()
    for lab in labs.values():
        lab.down()


def test_sync_write_on_image_after_sigkill(veth):
    d = veth.start(mtu=9000, sync=True)
    data = os.urandom(17 * 512)
    replies = d.exchange(d.ata(0x34, 100, 17, data=data))
    assert replies and replies[0][27] == 0x40
    # SIGKILL the target itself (the process inside `ip netns exec`)
    os.killpg(d.process.popen.pid, signal.SIGKILL)
    d.process.popen.wait(5)
    assert d.read_image(100 * 512, 17 * 512) == data


def test_sigterm_stops_cleanly(veth):
    d = veth.start()
    assert d.exchange(d.config(0))
    d.process.popen.send_signal(signal.SIGTERM)  # `ip netns exec` execs the target: same process
    assert d.process.popen.wait(5) == 0
    with open(d.process.log_path) as f:
        assert "stopped after" in f.read()
