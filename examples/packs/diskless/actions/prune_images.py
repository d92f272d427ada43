from lib.images import DisklessAction


class PruneImagesAction(DisklessAction):
    def run(self, dry_run=True):
        in_use = self.nodes_by_image()
        newest_first = list(self.images())
        keep = self.config.get("keep_images", 3)
        removable = [name for name in newest_first[keep:] if name not in in_use]
        if not dry_run:
            for name in removable:
                self.remove_image(name)
                self.logger.info("Removed image %s", name)
        return {
            "dry_run": dry_run,
            "removed": removable,
            "kept": [name for name in newest_first if name not in removable],
        }
