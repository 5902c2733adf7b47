"""The egress lock's iptables rules (pure) and the script that applies them."""

import subprocess

import pytest

from hub.exceptions import InvalidInput
from hub.spawner.netlock import make_lock_rules, make_lock_rules_v6, make_lock_script, restore_input

HUB = ("10.96.0.10", 8081)
EGRESS = ("10.96.0.11", 8090)


def test_default_drop_then_only_listed_endpoints():
    rules = make_lock_rules([HUB, EGRESS], allow_dns=False)
    assert rules[0] == ["-P", "OUTPUT", "DROP"]
    assert rules[1] == ["-F", "OUTPUT"]
    accepts = [r for r in rules if r[-1] == "ACCEPT"]
    assert ["-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT"] in accepts
    assert ["-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"] in accepts
    dests = [(r[r.index("-d") + 1], r[r.index("--dport") + 1], r[r.index("-p") + 1]) for r in accepts if "-d" in r]
    assert dests == [("10.96.0.10/32", "8081", "tcp"), ("10.96.0.11/32", "8090", "tcp")]
    assert rules[-1] == ["-A", "OUTPUT", "-j", "REJECT"]
    assert not any("53" in r for r in rules)


def test_dns_only_to_named_resolver_and_only_when_allowed():
    rules = make_lock_rules([HUB], allow_dns=True, dns_servers=["10.96.0.2"])
    dns = [r for r in rules if "53" in r]
    assert dns == [["-A", "OUTPUT", "-d", "10.96.0.2/32", "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
                   ["-A", "OUTPUT", "-d", "10.96.0.2/32", "-p", "tcp", "--dport", "53", "-j", "ACCEPT"]]
    # servers given but DNS not allowed: no DNS rule
    assert not any("53" in r for r in make_lock_rules([HUB], allow_dns=False, dns_servers=["10.96.0.2"]))


@pytest.mark.parametrize("allowed, dns, servers, message", [
    ([("hub.svc", 8081)], False, [], "not an IP address"),
    ([("10.0.0.1", 0)], False, [], "port must be 1..65535"),
    ([("10.0.0.1", 70000)], False, [], "port must be 1..65535"),
    ([("10.0.0.1", "8081")], False, [], "port must be 1..65535"),
    ([("0.0.0.0", 80)], False, [], "refusing to allow 0.0.0.0"),
    ([("fd00::1", 80)], False, [], "only IPv4"),
    ([("10.0.0.1; rm -rf /", 80)], False, [], "not an IP address"),
    ([HUB], True, [], "allow_dns needs the cluster DNS server"),
])
def test_bad_endpoints_refused(allowed, dns, servers, message):
    with pytest.raises(InvalidInput, match=message):
        make_lock_rules(allowed, allow_dns=dns, dns_servers=servers)


def test_v6_allows_nothing_but_loopback():
    rules = make_lock_rules_v6()
    assert rules[0] == ["-P", "OUTPUT", "DROP"] and rules[-1] == ["-A", "OUTPUT", "-j", "REJECT"]
    assert not any("-d" in r for r in rules)


def test_script_is_valid_shell_and_fails_closed():
    script = make_lock_script(make_lock_rules([HUB, EGRESS], allow_dns=False))
    assert script.startswith("set -eu\n")
    assert "':OUTPUT DROP [0:0]'" in script and "| iptables-restore -w\n" in script
    assert "'-A OUTPUT -d 10.96.0.11/32 -p tcp --dport 8090 -j ACCEPT'" in script
    checked = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_restore_input_is_one_filter_table_commit():
    lines = restore_input(make_lock_rules([HUB], allow_dns=False))
    assert lines[:2] == ["*filter", ":OUTPUT DROP [0:0]"] and lines[-1] == "COMMIT"
    assert "-A OUTPUT -d 10.96.0.10/32 -p tcp --dport 8081 -j ACCEPT" in lines
    assert not any(line.startswith("-F") for line in lines)  # restore replaces the table


@pytest.mark.parametrize("token", ["x'; reboot; '", "a b", "", "$(id)", "\n-A OUTPUT -j ACCEPT", "ACCEPT\n"])
def test_restore_input_refuses_anything_but_plain_words(token):
    with pytest.raises(InvalidInput, match="not a plain word"):
        restore_input([["-A", "OUTPUT", "-d", token, "-j", "ACCEPT"]])
