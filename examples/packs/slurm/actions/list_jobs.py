from lib.slurm_cli import SQUEUE_FORMAT, SlurmAction, parse_squeue


class ListJobsAction(SlurmAction):
    def run(self, user="", partition="", states=None):
        argv = ["squeue", "--noheader", "--format=" + SQUEUE_FORMAT]
        if user:
            argv.append("--user=" + user)
        partition = self.partition_or_default(partition)
        if partition:
            argv.append("--partition=" + partition)
        if states:
            argv.append("--states=" + ",".join(states))
        return parse_squeue(self.slurm(*argv))
