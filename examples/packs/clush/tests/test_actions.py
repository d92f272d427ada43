"""The actions against real ClusterShell; `remote=False` runs per node on this host, so no SSH."""

from nodeset import NodeSetAction
from run import RunAction


def test_nodeset_folds_after_excluding_nodes():
    action = NodeSetAction(config={})

    folded = action.run(nodes="node[001-010]", exclude="node[004-005]")

    assert folded == "node[001-003,006-010]"


def test_nodeset_expands_and_counts():
    action = NodeSetAction(config={})

    assert action.run(nodes="gpu[1-3]", operation="expand") == ["gpu1", "gpu2", "gpu3"]
    assert action.run(nodes="gpu[1-3],login1", operation="count") == 4


def test_run_groups_identical_output_and_reports_failures():
    action = RunAction(config={"fanout": 4})

    ok, result = action.run(
        nodes="node[1-4]",
        command="echo booted; [ %h != node3 ] || exit 3",
        remote=False,
    )

    assert not ok
    assert result["outputs"] == [{"nodes": "node[1-4]", "output": "booted"}]
    assert result["succeeded"] == "node[1-2,4]"
    assert result["failed"] == "node3"
    assert result["retcodes"] == {"node3": 3}
    assert result["timed_out"] == ""


def test_run_reports_nodes_that_time_out():
    action = RunAction(config={})

    ok, result = action.run(
        nodes="node[1-2]",
        command="[ %h = node1 ] || sleep 5",
        command_timeout=1,
        remote=False,
    )

    assert not ok
    assert result["succeeded"] == "node1"
    assert result["timed_out"] == "node2"
