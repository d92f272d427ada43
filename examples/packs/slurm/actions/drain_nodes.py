from lib.slurm_cli import SlurmAction


class DrainNodesAction(SlurmAction):
    def run(self, nodes, reason):
        self.slurm("scontrol", "update", "NodeName=" + nodes, "State=DRAIN", "Reason=" + reason)
        return {"nodes": nodes, "state": "DRAIN", "reason": reason}
