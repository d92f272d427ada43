from lib.slurm_cli import SINFO_FORMAT, SlurmAction, parse_sinfo


class NodeStatesAction(SlurmAction):
    def run(self, partition=""):
        argv = ["sinfo", "--noheader", "--format=" + SINFO_FORMAT]
        partition = self.partition_or_default(partition)
        if partition:
            argv.append("--partition=" + partition)
        return parse_sinfo(self.slurm(*argv))
