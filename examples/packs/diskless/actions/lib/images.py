"""Boot images in `image_dir` and the per-node iPXE scripts in `ipxe_dir` that select them."""

import datetime
import os
import re
import shutil

import jinja2
from ClusterShell.NodeSet import NodeSet
from st2common.runners.base_action import Action

IMAGE_FILES = ("vmlinuz", "initrd.img", "rootfs.squashfs")
IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# The marker line the template writes, so the scripts can be read back.
IMAGE_MARKER = re.compile(r"^# diskless image: (\S+)$", re.MULTILINE)
TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")


class ImageError(Exception):
    pass


class DisklessAction(Action):
    @property
    def image_dir(self):
        return self.config.get("image_dir", "/srv/diskless/images")

    @property
    def ipxe_dir(self):
        return self.config.get("ipxe_dir", "/srv/tftp/ipxe/nodes")

    def images(self):
        """Complete images, newest first (by their root file system): {name: details}."""
        found = []
        for name in os.listdir(self.image_dir):
            folder = os.path.join(self.image_dir, name)
            paths = [os.path.join(folder, file) for file in IMAGE_FILES]
            if IMAGE_NAME.match(name) and all(os.path.isfile(path) for path in paths):
                found.append((name, paths))
        found.sort(key=lambda image: os.path.getmtime(image[1][-1]), reverse=True)
        return {
            name: {
                "size_mb": round(sum(os.path.getsize(path) for path in paths) / 2**20, 1),
                "built": datetime.datetime.fromtimestamp(
                    os.path.getmtime(paths[-1]), datetime.timezone.utc
                ).isoformat(timespec="seconds"),
            }
            for name, paths in found
        }

    def nodes_by_image(self):
        """{image: NodeSet} from the iPXE scripts written by `set_image`."""
        usage = {}
        if not os.path.isdir(self.ipxe_dir):
            return usage
        for file in os.listdir(self.ipxe_dir):
            if not file.endswith(".ipxe"):
                continue
            with open(os.path.join(self.ipxe_dir, file), encoding="utf-8") as script:
                marker = IMAGE_MARKER.search(script.read())
            if marker:
                usage.setdefault(marker.group(1), NodeSet()).update(file[: -len(".ipxe")])
        return usage

    def write_boot_scripts(self, nodes, image):
        if image not in self.images():
            raise ImageError(
                "Image {!r} is not a complete image in {} (needs {})".format(
                    image, self.image_dir, ", ".join(IMAGE_FILES)
                )
            )
        template = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        ).get_template("node.ipxe.j2")
        os.makedirs(self.ipxe_dir, exist_ok=True)
        for node in nodes:
            script = template.render(
                node=node,
                image=image,
                boot_server=self.config["boot_server"].rstrip("/"),
                kernel_args=self.config.get("kernel_args", ""),
            )
            path = os.path.join(self.ipxe_dir, node + ".ipxe")
            # A node booting right now must read the old script or the new one, never half.
            with open(path + ".tmp", "w", encoding="utf-8") as tmp:
                tmp.write(script)
            os.replace(path + ".tmp", path)

    def remove_image(self, name):
        shutil.rmtree(os.path.join(self.image_dir, name))
