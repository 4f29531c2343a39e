"""Labs: a veth pair and a namespace that come and go cleanly."""

import os
import subprocess

import pytest

from aoeconform.cli import main
from aoeconform.errors import UsageError
from aoeconform.lab import Lab, make_sparse_image, parse_size
from conftest import unique_lab_name


def host_link_exists(name):
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def netns_exists(ns):
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return any(line.split()[:1] == [ns] for line in listing.splitlines())


def link_mtu_in_netns(ns, name):
    out = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "dev", name], capture_output=True, text=True, check=True).stdout
    return int(out.split(" mtu ")[1].split()[0])


def assert_gone(lab):
    assert not host_link_exists(lab.host_if)
    assert not netns_exists(lab.netns)


@pytest.mark.parametrize("name", ["eth0", "aoec", "aoec0-x", "aoec" + "1" * 11, "aoec0;rm"])
def test_bad_names_are_refused(name):
    if name == "aoec":
        Lab(name)  # the prefix alone is fine
        return
    with pytest.raises(UsageError):
        Lab(name)


def test_names_fit_linux_limits():
    lab = Lab("aoec" + "a" * 10)
    assert len(lab.host_if) <= 15 and len(lab.target_if) <= 15


def test_mtu_out_of_range():
    with pytest.raises(UsageError):
        Lab("aoec0", mtu=20)


def test_parse_size_and_sparse_image(tmp_path):
    assert parse_size("64M") == 64 << 20
    assert parse_size("1GiB") == 1 << 30
    assert parse_size("8s") == 4096
    assert parse_size(1234) == 1234
    with pytest.raises(UsageError):
        parse_size("lots")
    path = tmp_path / "disk.img"
    make_sparse_image(path, "64M")
    st = os.stat(path)
    assert st.st_size == 64 << 20
    assert st.st_blocks * 512 < 1 << 20  # sparse: almost nothing allocated


@pytest.mark.root
def test_up_and_down_are_idempotent(require_root):
    lab = Lab(unique_lab_name(), mtu=9000)
    try:
        lab.up()
        lab.up()  # replaces the existing one without complaint
        assert host_link_exists(lab.host_if)
        assert netns_exists(lab.netns)
        assert link_mtu_in_netns(lab.netns, lab.target_if) == 9000
        with open(f"/sys/class/net/{lab.host_if}/mtu") as f:
            assert int(f.read()) == 9000
        assert not host_link_exists(lab.target_if)  # the target end is not in our namespace
        assert len(lab.host_mac) == 6 and len(lab.target_mac) == 6
        assert lab.exists()
    finally:
        lab.down()
    assert_gone(lab)
    lab.down()
    assert_gone(lab)
    assert not lab.exists()


@pytest.mark.root
def test_context_manager_and_stale_process_cleanup(require_root):
    with Lab(unique_lab_name()) as lab:
        # a process left running in the namespace must not keep it alive
        proc = lab.start_in_netns(["sleep", "300"])
        assert proc.alive() and os.path.exists(proc.log_path)
    assert not proc.alive()
    assert not os.path.exists(proc.log_path)  # a temporary log goes with the lab
    assert_gone(lab)


@pytest.mark.root
def test_up_replaces_a_stale_lab_with_a_process_in_it(require_root):
    name = unique_lab_name()
    stale = Lab(name).up()
    orphan = subprocess.Popen(["ip", "netns", "exec", stale.netns, "sleep", "300"])
    try:
        fresh = Lab(name, mtu=1500).up()
        assert host_link_exists(fresh.host_if) and netns_exists(fresh.netns)
        orphan.wait(5)
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        Lab(name).down()
    assert_gone(stale)


@pytest.mark.root
def test_target_process_stop_and_log(require_root, make_lab, tmp_path):
    lab = make_lab()
    log = tmp_path / "t.log"
    proc = lab.start_in_netns(["sh", "-c", "echo hello from $(ip -o link show | grep -c aoec)"], log_path=str(log))
    proc.popen.wait(5)
    assert log.read_text().strip() == "hello from 1"  # only the target end is visible inside
    assert proc.stop() == 0


@pytest.mark.root
def test_cli_lab_up_down(require_root, capsys):
    name = unique_lab_name()
    try:
        assert main(["lab", "up", "--name", name, "--mtu", "9000"]) == 0
        out = capsys.readouterr().out
        assert f"{name}h" in out and f"{name}-ns" in out and f"{name}t" in out
        assert f"ip netns exec {name}-ns vblade 1 1 {name}t disk.img" in out
        assert "-m aoeconform target mem:64M" in out
        assert main(["lab", "up", "--name", name]) == 0
        assert main(["lab", "status", "--name", name]) == 0
    finally:
        assert main(["lab", "down", "--name", name]) == 0
    assert main(["lab", "down", "--name", name]) == 0
    assert main(["lab", "status", "--name", name]) == 3
    assert not host_link_exists(f"{name}h") and not netns_exists(f"{name}-ns")


def test_cli_refuses_foreign_names(capsys):
    assert main(["lab", "down", "--name", "eth0"]) == 2
    assert "not allowed" in capsys.readouterr().err
