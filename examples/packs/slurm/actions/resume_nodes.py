from lib.slurm_cli import SlurmAction


class ResumeNodesAction(SlurmAction):
    def run(self, nodes):
        self.slurm("scontrol", "update", "NodeName=" + nodes, "State=RESUME")
        return {"nodes": nodes, "state": "RESUME"}
