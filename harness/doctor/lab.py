"""``hilbench doctor`` for a labgrid place (transport ``labgrid``, docs/lab.md): labgrid installed, the coordinator
answering, the places the target asks for and who holds them, the resource that says where the board's SSH server
is; then, when a place is free, it is acquired for a moment (reserved, acquired, released like a run does) and
the SSH checks run on the board behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from harness.config.targets import Target
from harness.doctor.base import Check

__all__ = ["doctor_labgrid"]


def doctor_labgrid(target: Target, ssh_doctor: Callable[[Target], list[Check]]) -> list[Check]:
    """The checks of a labgrid target; ``ssh_doctor`` checks the board once a place is held."""
    from harness.transport.labgrid import (
        INSTALL_HINT,
        LabClient,
        LabError,
        Lease,
        _labgrid,
        client_name,
        coordinator_address,
        place_summary,
    )

    s = target.labgrid
    assert s is not None
    try:
        lg = _labgrid()
        address = coordinator_address(s, target.source)
    except LabError as exc:
        return [Check("labgrid", "fail", exc.detail, INSTALL_HINT if "installed" in exc.detail else
                      f"set labgrid.coordinator in {target.source} or $LG_COORDINATOR")]
    checks = [Check("labgrid", "ok", f"labgrid {lg.version}")]
    try:
        client = LabClient(address, target=target.name)
    except LabError as exc:
        return [*checks, Check("coordinator", "fail", exc.detail,
                               f"start labgrid-coordinator there, or fix labgrid.coordinator in {target.source}")]
    me = client_name()
    try:
        with client._cond:
            exporters = len([e for e, groups in client.resources.items() if any(groups.values())])
            checks.append(Check("coordinator", "ok", f"{address} answers ({len(client.places)} places, {exporters} "
                                                     f"exporters; no authentication: docs/lab.md)"))
        places = client.matching(s)
        if not places:
            known = ", ".join(sorted(client.places)) or "none"
            return [*checks, Check("place", "fail", f"no place matches {s.wanted()} (places: {known})",
                                   "create it (`labgrid-client -p NAME create`, `set-tags`, `add-match`) or fix "
                                   f"labgrid.reserve / labgrid.place in {target.source}")]
        free = [p for p in places if not p.acquired and not p.reservation]
        mine = [p for p in places if p.acquired == me]
        detail = "; ".join(f"{p.name} {place_summary(p)}" for p in places)
        if mine:
            checks.append(Check("place", "warn", detail, f"held by you ({me}): a run that was killed? "
                                                         f"`hilbench lab release {mine[0].name}`"))
        else:
            checks.append(Check("place", "ok" if free else "warn", detail,
                                "" if free else f"a run waits up to labgrid.wait_s = {s.wait_s:g} s for it"))
        missing = [p.name for p in places if client.resource_of(p, s.resource, acquired=False) is None]
        if missing:
            checks.append(Check("resource", "fail", f"no {s.resource} resource for {', '.join(missing)} (its exporter "
                                                    "down, or no match for it)",
                                f"start its exporter, add a match (`labgrid-client -p {missing[0]} add-match "
                                f"EXPORTER/GROUP/{s.resource}`), or set labgrid.resource"))
            return checks
        found = client.resource_of(places[0], s.resource, acquired=False)
        assert found is not None
        path, entry = found
        args = entry.args
        checks.append(Check("resource", "ok", f"{'/'.join(path)} on exporter {path[0]}: "
                                              f"{args.get('username')}@{args.get('address')}:{args.get('port', 22)}"
                                              + (" (through its exporter's proxy)" if entry.extra.get("proxy_required")
                                                 else "")))
    finally:
        client.close()
    if not free:
        checks.append(Check("ssh", "info", "not checked: no matching place is free now (the SSH checks need one)"))
        return checks
    lease = Lease(replace(target, labgrid=replace(s, wait_s=0.0)))
    try:
        resolved = lease.acquire()
    except LabError as exc:
        return [*checks, Check("acquire", "fail", exc.detail, "see the message")]
    try:
        checks.append(Check("acquire", "ok", f"{lease.place} reserved and acquired (released after these checks)"))
        checks += ssh_doctor(replace(resolved, transport="ssh"))
    finally:
        lease.release()
    return checks
