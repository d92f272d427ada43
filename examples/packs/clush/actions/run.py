from ClusterShell.NodeSet import NodeSet
from ClusterShell.Task import task_self
from st2common.runners.base_action import Action


class RunAction(Action):
    """Runs a command on a node set and reports output and return codes folded by node set."""

    def run(self, nodes, command, command_timeout=300, remote=True):
        targets = NodeSet(nodes)
        task = task_self()
        task.set_info("fanout", self.config.get("fanout", 64))
        task.set_info("connect_timeout", self.config.get("connect_timeout", 10))
        task.set_info("ssh_user", self.config.get("ssh_user", "root"))
        ssh_options = self.config.get("ssh_options")
        if ssh_options:
            task.set_info("ssh_options", ssh_options)

        worker = task.shell(
            command,
            nodes=targets,
            remote=remote,
            timeout=command_timeout or None,
            stdin=False,
        )
        task.run()
        result = summarize(worker)
        self.logger.info(
            "Ran %r on %s: %d ok, %d failed, %d timed out",
            command,
            targets,
            len(NodeSet(result["succeeded"])),
            len(NodeSet(result["failed"])),
            len(NodeSet(result["timed_out"])),
        )
        return not result["failed"] and not result["timed_out"], result


def summarize(worker):
    """Groups nodes with identical output, like `clush -b`, and splits them by outcome."""
    outputs = [
        {
            "nodes": str(NodeSet.fromlist(keys)),
            "output": buffer.message().decode("utf-8", errors="replace"),
        }
        for buffer, keys in worker.iter_buffers()
    ]
    succeeded = NodeSet()
    failed = {}
    for retcode, keys in worker.iter_retcodes():
        if retcode == 0:
            succeeded.update(NodeSet.fromlist(keys))
        else:
            # ssh itself exits with 255 when a node is unreachable.
            failed[retcode] = NodeSet.fromlist(keys)
    all_failed = NodeSet()
    for nodeset in failed.values():
        all_failed.update(nodeset)
    return {
        "outputs": sorted(outputs, key=lambda group: group["nodes"]),
        "retcodes": {str(nodeset): retcode for retcode, nodeset in sorted(failed.items())},
        "succeeded": str(succeeded),
        "failed": str(all_failed),
        "timed_out": str(NodeSet.fromlist(worker.iter_keys_timeout())),
    }
