from ClusterShell.NodeSet import NodeSet
from st2common.runners.base_action import Action


class NodeSetAction(Action):
    """Node set arithmetic, so workflows never parse bracket syntax themselves."""

    def run(self, nodes, exclude="", operation="fold"):
        nodeset = NodeSet(nodes)
        if exclude:
            nodeset.difference_update(NodeSet(exclude))
        if operation == "expand":
            return list(nodeset)
        if operation == "count":
            return len(nodeset)
        return str(nodeset)
