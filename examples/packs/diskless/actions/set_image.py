from ClusterShell.NodeSet import NodeSet

from lib.images import DisklessAction


class SetImageAction(DisklessAction):
    def run(self, nodes, image):
        targets = NodeSet(nodes)
        previous = {
            name: str(nodeset.intersection(targets))
            for name, nodeset in self.nodes_by_image().items()
            if name != image and nodeset.intersection(targets)
        }
        self.write_boot_scripts(targets, image)
        self.logger.info("%s now boot %s", targets, image)
        return {"image": image, "nodes": str(targets), "previous": previous}
