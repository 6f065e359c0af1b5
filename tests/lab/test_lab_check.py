"""`perfsuite lab check` against real sshd hosts on loopback ports, through real Ansible."""

import subprocess
import sys

from labhosts import Sshd, free_port, inventory_yaml

PERFSUITE = [sys.executable, "-m", "perfsuite.cli"]


def test_check_reports_facts_and_names_unreachable_and_bad_python(make_lab, tmp_path):
    lab = make_lab(["h1", "h2"])
    gone = Sshd("gone", tmp_path / "gone", free_port())        # nothing listens there
    badpy = Sshd("badpy", tmp_path / "badpy", lab.hosts[0].port)
    inv = tmp_path / "inv.yml"
    inv.write_text(inventory_yaml(lab.hosts + [gone, badpy], lab.key,
                                  extra={"badpy": {"ansible_python_interpreter": "/nonexistent/python3"}}))
    out = subprocess.run([*PERFSUITE, "lab", "check", str(inv), "--no-probe"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr
    lines = {ln.split()[0]: ln.split() for ln in out.stdout.splitlines() if ln.strip()}
    assert lines["h1"][2] == "ok" and lines["h2"][2] == "ok"
    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    assert kernel in out.stdout
    assert lines["gone"][2] == "unreachable" and lines["badpy"][2] == "python"
    assert f"port {gone.port}: Connection refused" in out.stdout
    assert "Python /nonexistent/python3 unusable" in out.stdout
    assert "Traceback" not in out.stderr
    assert "2 of 4 host(s) not usable: gone (unreachable), badpy (python)" in out.stderr


def test_check_missing_inventory_is_one_line(tmp_path):
    out = subprocess.run([*PERFSUITE, "lab", "check", str(tmp_path / "nope.yml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
