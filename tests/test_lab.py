"""Labs: a veth pair and a namespace that come and go cleanly."""

import os
import signal
import subprocess
import sys

import pytest

from aoeconform.cli import main
from aoeconform.errors import UsageError
from aoeconform.lab import BridgedLab, Lab, make_sparse_image, parse_size
from aoeconform.lab import owners
from aoeconform.lab.netns import _pid_alive
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


#: a process that owns a lab with a target in it, as a run or an xdist worker does
LAB_OWNER = """
import sys, time
from aoeconform.lab import BridgedLab
lab = BridgedLab(sys.argv[1]).up()
lab.start_in_netns(["sleep", "300"])
print("up", flush=True)
time.sleep(600)
"""


def _lab_in_a_child(name):
    child = subprocess.Popen([sys.executable, "-c", LAB_OWNER, name], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "up", f"the child did not bring lab {name} up"
    return child


def _netns_pids(lab):
    out = subprocess.run(["ip", "netns", "pids", lab.netns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_owner_records_tell_a_recycled_pid_from_the_owner():
    me = owners.this_process()
    assert owners.alive(me)
    assert not owners.alive(owners.Owner(me.pid, me.start + 1))  # same PID, a later process


@pytest.mark.root
def test_orphaned_labs_are_reaped_and_live_ones_left_alone(require_root, capsys):
    killed_name, live_name, manual_name, recycled_name = (unique_lab_name() for _ in range(4))
    killed, live = _lab_in_a_child(killed_name), _lab_in_a_child(live_name)
    orphan, alive_lab = BridgedLab(killed_name), BridgedLab(live_name)
    manual = Lab(manual_name).up(owned=False)  # as `aoeconform lab up` makes one: no owner
    recycled = Lab(recycled_name).up()
    me = owners.this_process()
    with owners.locked():  # its owner's PID now belongs to another process (this one)
        owners.claim(recycled_name, owners.Owner(me.pid, me.start + 1))
    try:
        target_pids = _netns_pids(orphan)
        assert target_pids
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        assert orphan.exists() and orphan.link.exists()  # SIGKILL left it all behind

        assert main(["lab", "clean"]) == 0
        out = capsys.readouterr().out
        assert len(out.strip().splitlines()) == 1 and out.startswith("lab clean: removed "), out
        assert killed_name in out and recycled_name in out and manual_name in out, out
        assert not orphan.exists() and not orphan.link.exists() and not Lab(recycled_name).exists()
        assert owners.read(killed_name) is None and owners.read(recycled_name) is None
        assert not any(_pid_alive(p) for p in target_pids), "the orphan's target still runs"
        assert alive_lab.exists() and alive_lab.link.exists() and _netns_pids(alive_lab)
        assert manual.exists()

        # a lab start-up reaps as well, once the owner is gone
        live.send_signal(signal.SIGKILL)
        live.wait(10)
        assert alive_lab.exists()
        with Lab(unique_lab_name()):
            assert not alive_lab.exists() and not alive_lab.link.exists()
        assert manual.exists()
    finally:
        for child in (killed, live):
            if child.poll() is None:
                child.kill()
                child.wait()
        for name in (killed_name, live_name, manual_name, recycled_name):
            BridgedLab(name).down()
    assert owners.read(live_name) is None and owners.read(manual_name) is None
