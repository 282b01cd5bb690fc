"""The chaos run's fault schedule (pure): every kind of the mode at least once, aimed where the
stack has something to aim at, the same for the same seed."""

from __future__ import annotations

from chaos.faults import KINDS, kinds_for, schedule
from chaos.stack import MEMBER_TIMEOUT_MS, query_names


def test_a_cluster_schedule_has_every_kind_aimed_at_real_instances() -> None:
    queries = query_names(3)
    kinds = kinds_for(3, 2)
    assert set(KINDS) < set(kinds)
    for seconds in (60, 600):
        faults = schedule(seconds, 1, kinds, queries)
        assert {f.kind for f in faults} == set(kinds)
        assert faults == schedule(seconds, 1, kinds, queries)
        for fault in faults:
            if fault.kind == "query_kill_two":
                first, second = fault.target.split("+")
                assert {first, second} <= set(queries)
                assert first != second
            elif fault.kind in ("latency", "reset", "partition"):
                assert fault.target in ("command", *queries, "all")
            elif fault.kind in ("rolling_restart", "broker_kill", "command_kill") or "poison" in (
                fault.kind
            ):
                assert fault.target == ""
            else:
                assert fault.target in queries, fault
            if fault.kind == "pause":
                assert fault.duration_s > MEMBER_TIMEOUT_MS / 1000  # the others take over


def test_two_down_at_once_only_with_a_copy_left_and_one_instance_has_the_first_kinds() -> None:
    assert "query_kill_two" not in kinds_for(3, 1)
    assert "query_kill_two" not in kinds_for(2, 2)
    assert kinds_for(1, 1) == KINDS
    assert {f.target for f in schedule(60, 1) if f.kind == "query_kill"} == {"q1"}
