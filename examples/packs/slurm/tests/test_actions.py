"""Parsing of real squeue/sinfo output and the exact commands sent to Slurm (no Slurm needed)."""

import subprocess

import pytest

from drain_nodes import DrainNodesAction
from lib import slurm_cli
from list_jobs import ListJobsAction
from node_states import NodeStatesAction

SQUEUE_OUTPUT = """\
48211|batch|alice|RUNNING|2-03:14:07|16|node[001-016]|cfd|sweep 3
48230|gpu|bob|PENDING|0:00|2|(Resources)|train-llm
"""

SINFO_OUTPUT = """\
batch*|mix|12|node[001-012]
batch*|drain|2|node[013-014]
gpu|down*|1|gpu03
gpu|idle~|3|gpu[04-06]
"""


class FakeSubprocess:
    """Records what would be executed and answers like the real command."""

    def __init__(self, stdout="", returncode=0, stderr=""):
        self.calls = []
        self.stdout, self.returncode, self.stderr = stdout, returncode, stderr

    def __call__(self, command, **kwargs):
        self.calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, self.returncode, self.stdout, self.stderr)


@pytest.fixture
def fake_run(monkeypatch):
    fake = FakeSubprocess()
    monkeypatch.setattr(slurm_cli.subprocess, "run", fake)
    return fake


def test_squeue_output_keeps_separators_inside_job_names():
    jobs = slurm_cli.parse_squeue(SQUEUE_OUTPUT)

    assert jobs[0]["name"] == "cfd|sweep 3"
    assert jobs[0]["node_count"] == 16
    assert jobs[1]["reason"] == "(Resources)"
    assert [job["state"] for job in jobs] == ["RUNNING", "PENDING"]


def test_sinfo_output_makes_default_partition_and_unresponsive_nodes_explicit():
    groups = slurm_cli.parse_sinfo(SINFO_OUTPUT)

    assert groups[0]["partition"] == "batch" and groups[0]["default_partition"]
    assert groups[2]["state"] == "down" and not groups[2]["responding"]
    assert groups[3]["state"] == "idle" and groups[3]["responding"]


def test_local_host_runs_slurm_commands_directly():
    command, env = slurm_cli.build_command({"slurmctld_host": "localhost"}, ["sinfo"])

    assert command == ["sinfo"]
    assert env is None


def test_password_reaches_sshpass_through_the_environment_only():
    config = {"slurmctld_host": "slurmctl01", "ssh_password": "s3cret"}

    command, env = slurm_cli.build_command(config, ["scontrol", "update", "Reason=bad dimm"])

    assert command[:3] == ["sshpass", "-e", "ssh"]
    assert command[-1] == "scontrol update 'Reason=bad dimm'"
    assert all("s3cret" not in word for word in command)
    assert env["SSHPASS"] == "s3cret"


def test_drain_quotes_the_reason_for_the_remote_shell(fake_run):
    action = DrainNodesAction(config={"slurmctld_host": "slurmctl01", "ssh_user": "slurm"})

    action.run(nodes="node[013-014]", reason="ECC errors; ticket 4711")

    command, _ = fake_run.calls[0]
    assert command == [
        "ssh",
        "-oBatchMode=yes",
        "-l",
        "slurm",
        "slurmctl01",
        "scontrol update 'NodeName=node[013-014]' State=DRAIN 'Reason=ECC errors; ticket 4711'",
    ]


def test_partition_default_from_config_filters_jobs(fake_run):
    fake_run.stdout = SQUEUE_OUTPUT
    action = ListJobsAction(config={"slurmctld_host": "localhost", "partition_default": "batch"})

    action.run(states=["RUNNING"])

    command, _ = fake_run.calls[0]
    assert "--partition=batch" in command
    assert "--states=RUNNING" in command


def test_failing_slurm_command_raises_with_its_stderr(fake_run):
    fake_run.returncode = 1
    fake_run.stderr = "slurm_load_partitions: Unable to contact slurm controller"
    action = NodeStatesAction(config={"slurmctld_host": "localhost"})

    with pytest.raises(slurm_cli.SlurmCommandError, match="Unable to contact slurm controller"):
        action.run()
