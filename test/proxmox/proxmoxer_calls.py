"""Drives the Proxmox simulator with Debian's python3-proxmoxer, as a user's own script would.

Usage: proxmoxer_calls.py HOST:PORT USER@REALM TOKEN_NAME SECRET_FILE CA_FILE NODE
Prints one JSON object: each call's name -> {"ok": true, "data": ...} or
{"ok": false, "status": N, "reason": "...", "errors": {...}}.
The secret is read from a file so it never appears on a command line.
"""

import json
import sys
import time

from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

host, user, token_name, secret_file, ca_file, node = sys.argv[1:7]
with open(secret_file, encoding="utf-8") as handle:
    secret = handle.read().strip()

# TLS is verified against the test CA: requests takes a CA bundle path for `verify`.
px = ProxmoxAPI(host, user=user, token_name=token_name, token_value=secret, verify_ssl=ca_file, timeout=10)
results = {}


def call(name, fn):
    try:
        results[name] = {"ok": True, "data": fn()}
    except ResourceException as error:
        results[name] = {
            "ok": False,
            "status": error.status_code,
            "reason": error.content,
            "errors": error.errors,
        }
    return results[name]


def body_of(name, method, path, **params):
    """The answer's body through proxmoxer's own session: proxmoxer 1.2.0 drops a 400's
    `errors` (it reads them from `data`, which Proxmox sets to null), so they are read here."""
    session = px._store["session"]
    url = f"{px._store['base_url']}{path}"
    answer = session.request(method, url, params=params if method == "GET" else None, data=params if method != "GET" else None)
    results[name] = {"ok": True, "data": {"status": answer.status_code, "body": answer.json()}}


def wait(name, upid, node_name=None):
    """Polls a task's status until it stops, as a script waiting for a worker does."""
    deadline = time.monotonic() + 10
    while True:
        status = px.nodes(node_name or node).tasks(upid).status.get()
        if status["status"] == "stopped" or time.monotonic() > deadline:
            results[name] = {"ok": True, "data": status}
            return status
        time.sleep(0.01)


ENTRY = f"node={node},path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1"
vm = px.nodes(node).qemu(101)
pci = px.cluster.mapping.pci

call("version", lambda: px.version.get())
call("nodes", lambda: px.nodes.get())
call("node status", lambda: px.nodes(node).status.get())
call("pci", lambda: px.nodes(node).hardware.pci.get())
call("pci verbose=0", lambda: px.nodes(node).hardware.pci.get(verbose=0))
call("pci blacklist 03", lambda: px.nodes(node).hardware.pci.get(**{"pci-class-blacklist": "03"}))
call("mdev types", lambda: px.nodes(node).hardware.pci("0000:00:02.0").mdev.get())

call("mapping create", lambda: pci.post(id="iGPU", map=[ENTRY], mdev=1, description="first"))
first = call("mapping get", lambda: pci("iGPU").get())["data"]
call("mapping describe", lambda: pci("iGPU").put(description="igpu-split vGPU pool", digest=first["digest"]))
call("mapping after describe", lambda: pci("iGPU").get())
call("mapping stale digest", lambda: pci("iGPU").put(mdev=1, digest=first["digest"]))
call("mapping delete description", lambda: pci("iGPU").put(delete="description"))
call("mapping delete map", lambda: pci("iGPU").put(delete="map"))
call("mapping set and delete", lambda: pci("iGPU").put(description="x", delete="description"))
call("mapping after delete", lambda: pci("iGPU").get())
call("mapping list check-node", lambda: pci.get(**{"check-node": node}))
call("mapping update map", lambda: pci("iGPU").put(map=[ENTRY], mdev=1))
call("mapping spare create", lambda: pci.post(id="spare", map=[ENTRY]))
call("mapping spare delete", lambda: pci("spare").delete())

call("vms", lambda: px.nodes(node).qemu.get())
config = call("config", lambda: vm.config.get())["data"]
upid = call(
    "config change",
    lambda: vm.config.post(hostpci0="mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1", digest=config["digest"]),
)["data"]
wait("config change task", upid)
call("pending", lambda: vm.pending.get())
call("config current", lambda: vm.config.get(current=1))
call("status current", lambda: vm.status.current.get())
wait("shutdown task", call("shutdown", lambda: vm.status.shutdown.post(timeout=30))["data"])
call("config after shutdown", lambda: vm.config.get())
wait("start task", call("start", lambda: vm.status.start.post())["data"])
call("mdev types while running", lambda: px.nodes(node).hardware.pci("0000:00:02.0").mdev.get())
wait("stop task", call("stop", lambda: vm.status.stop.post())["data"])
call("status after stop", lambda: vm.status.current.get())
call("tasks", lambda: px.nodes(node).tasks.get(vmid=101, limit=3))
call("tasks typefilter", lambda: px.nodes(node).tasks.get(typefilter="qmstop"))
call("resources vm", lambda: px.cluster.resources.get(type="vm"))
call("resources", lambda: px.cluster.resources.get())
call("permissions", lambda: px.access.permissions.get(path="/vms/101"))

call("unknown parameter", lambda: vm.config.post(colour="red"))
call("type error", lambda: vm.status.shutdown.post(timeout="soon"))
call("boolean error", lambda: vm.config.get(current="yes"))
body_of("unknown parameter body", "POST", f"/nodes/{node}/qemu/101/config", colour="red")
body_of("type error body", "POST", f"/nodes/{node}/qemu/101/status/shutdown", timeout="soon")
body_of("boolean error body", "GET", f"/nodes/{node}/qemu/101/config", current="yes")
body_of("skiplock body", "POST", f"/nodes/{node}/qemu/101/status/start", skiplock=1)
call("unknown vm", lambda: px.nodes(node).qemu(999).config.get())
call("skiplock as token", lambda: vm.status.start.post(skiplock=1))

# SR-IOV (issue 16): an N100 node (pve4) whose iGPU made two VFs, pooled by one mapping
# (mdev off, one entry per VF); two VMs take the two VFs, a third finds none free.
vf_node = "pve4"
VF_ENTRIES = [
    f"node={vf_node},path=0000:00:02.{i},id=8086:46d1,subsystem-id=8086:7270,iommugroup={1 + i}" for i in (1, 2)
]


call("vf pci", lambda: px.nodes(vf_node).hardware.pci.get())
call("vf pool create", lambda: pci.post(id="iGPU-VF", map=VF_ENTRIES, description="igpu-split VF pool"))
call("vf pool get", lambda: pci("iGPU-VF").get())
call("vf pool check-node", lambda: pci.get(**{"check-node": vf_node}))
for vmid in (104, 105, 106):
    guest = px.nodes(vf_node).qemu(vmid)
    cfg = call(f"vf config {vmid}", lambda: guest.config.get())["data"]
    upid = call(
        f"vf attach {vmid}",
        lambda: guest.config.post(hostpci0="mapping=iGPU-VF,pcie=1", digest=cfg["digest"]),
    )["data"]
    wait(f"vf attach task {vmid}", upid, vf_node)
    started = call(f"vf start {vmid}", lambda: guest.status.start.post())
    if started.get("ok"):
        wait(f"vf start task {vmid}", started["data"], vf_node)

# Proxmox HA: a resource made, listed, read, set to ignored with the digest read, and the
# datacenter options (their `ha` shutdown policy).
ha = px.cluster.ha.resources
call("ha create", lambda: ha.post(sid="vm:101", state="started"))
call("ha list", lambda: ha.get(type="vm"))
ha_read = call("ha get", lambda: ha("vm:101").get())["data"]
call("ha ignore", lambda: ha("vm:101").put(state="ignored", digest=ha_read["digest"]))
call("ha after ignore", lambda: ha("vm:101").get())
call("options", lambda: px.cluster.options.get())

json.dump(results, sys.stdout)
