from lib.images import DisklessAction


class ListImagesAction(DisklessAction):
    def run(self):
        usage = self.nodes_by_image()
        return [
            dict(details, name=name, nodes=str(usage.get(name, "")))
            for name, details in self.images().items()
        ]
