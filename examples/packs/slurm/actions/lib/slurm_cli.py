"""Runs Slurm's command-line tools, locally or on `slurmctld_host` over SSH, and parses them."""

import os
import shlex
import subprocess

from st2common.runners.base_action import Action

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}

# A field separator Slurm never puts into ids, partitions, states or node lists; the job name,
# which may contain anything, is the last field so it can be split off whole.
SEPARATOR = "|"
SQUEUE_FIELDS = ["job_id", "partition", "user", "state", "time", "node_count", "reason", "name"]
SQUEUE_FORMAT = SEPARATOR.join(["%i", "%P", "%u", "%T", "%M", "%D", "%R", "%j"])
SINFO_FORMAT = SEPARATOR.join(["%P", "%t", "%D", "%N"])


class SlurmCommandError(Exception):
    pass


class SlurmAction(Action):
    def slurm(self, *argv):
        """Runs one Slurm command where the pack config says and returns its standard output."""
        command, env = build_command(self.config, list(argv))
        self.logger.debug("Running %s", shlex.join(argv))
        completed = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=self.config.get("command_timeout", 60),
            check=False,
        )
        if completed.returncode != 0:
            raise SlurmCommandError(
                "`{}` on {} exited with {}: {}".format(
                    shlex.join(argv),
                    self.config["slurmctld_host"],
                    completed.returncode,
                    completed.stderr.strip(),
                )
            )
        return completed.stdout

    def partition_or_default(self, partition):
        return partition or self.config.get("partition_default") or ""


def build_command(config, argv):
    """The argv to execute and its environment (None: inherit) for a Slurm command."""
    host = config["slurmctld_host"]
    if host in LOCAL_HOSTS:
        return argv, None
    # ssh hands the remote side one string for its shell, so every word is quoted.
    remote_command = shlex.join(argv)
    user = config.get("ssh_user", "root")
    password = config.get("ssh_password")
    if not password:
        return ["ssh", "-oBatchMode=yes", "-l", user, host, remote_command], None
    ssh = ["sshpass", "-e", "ssh", "-l", user, host, remote_command]
    return ssh, dict(os.environ, SSHPASS=password)


def parse_squeue(output):
    """Jobs from `squeue --noheader --format=SQUEUE_FORMAT` output."""
    jobs = []
    for line in output.splitlines():
        if not line.strip():
            continue
        values = line.split(SEPARATOR, len(SQUEUE_FIELDS) - 1)
        if len(values) != len(SQUEUE_FIELDS):
            raise ValueError("Unexpected squeue line: {!r}".format(line))
        job = dict(zip(SQUEUE_FIELDS, values))
        job["node_count"] = int(job["node_count"])
        jobs.append(job)
    return jobs


def parse_sinfo(output):
    """Node groups from `sinfo --noheader --format=SINFO_FORMAT` output.

    sinfo marks the default partition with `*` and unresponsive nodes with a `*` after the
    state; both become explicit fields.
    """
    groups = []
    for line in output.splitlines():
        if not line.strip():
            continue
        partition, state, count, nodes = line.split(SEPARATOR)
        groups.append(
            {
                "partition": partition.rstrip("*"),
                "default_partition": partition.endswith("*"),
                "state": state.rstrip("*~#!%$@^-"),
                "responding": not state.endswith("*"),
                "node_count": int(count),
                "nodes": nodes,
            }
        )
    return groups
