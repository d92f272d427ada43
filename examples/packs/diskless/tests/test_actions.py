"""The actions on a real image folder and iPXE folder in a temporary directory."""

import os

import pytest

from lib.images import ImageError
from list_images import ListImagesAction
from prune_images import PruneImagesAction
from set_image import SetImageAction

# Built in this order, one day apart.
IMAGES = ["rocky9-2024.10", "rocky9-2025.01", "rocky9-2025.03", "rocky9-2025.06"]


@pytest.fixture
def config(tmp_path):
    image_dir = tmp_path / "images"
    for day, name in enumerate(IMAGES):
        folder = image_dir / name
        folder.mkdir(parents=True)
        for file in ("vmlinuz", "initrd.img", "rootfs.squashfs"):
            (folder / file).write_bytes(b"\0" * 1024)
        os.utime(folder / "rootfs.squashfs", (day * 86400, day * 86400))
    # Still being built: no root file system yet, so not an image.
    (image_dir / "rocky9-2025.09").mkdir()
    return {
        "image_dir": str(image_dir),
        "ipxe_dir": str(tmp_path / "ipxe"),
        "boot_server": "http://boot01:8080/images/",
        "kernel_args": "console=ttyS0,115200n8",
        "keep_images": 2,
    }


def test_set_image_writes_one_boot_script_per_node(config):
    result = SetImageAction(config=config).run(nodes="node[01-03]", image="rocky9-2025.06")

    assert result == {"image": "rocky9-2025.06", "nodes": "node[01-03]", "previous": {}}
    with open(os.path.join(config["ipxe_dir"], "node02.ipxe"), encoding="utf-8") as file:
        script = file.read()
    assert script.startswith("#!ipxe\n")
    assert (
        "kernel http://boot01:8080/images/rocky9-2025.06/vmlinuz initrd=initrd.img "
        "root=live:http://boot01:8080/images/rocky9-2025.06/rootfs.squashfs"
    ) in script
    assert "hostname=node02 console=ttyS0,115200n8\n" in script
    assert sorted(os.listdir(config["ipxe_dir"])) == ["node01.ipxe", "node02.ipxe", "node03.ipxe"]


def test_set_image_reports_what_the_nodes_booted_before(config):
    action = SetImageAction(config=config)
    action.run(nodes="node[01-04]", image="rocky9-2025.03")

    result = action.run(nodes="node[03-05]", image="rocky9-2025.06")

    assert result["previous"] == {"rocky9-2025.03": "node[03-04]"}


def test_set_image_refuses_an_incomplete_image(config):
    with pytest.raises(ImageError, match="rocky9-2025.09"):
        SetImageAction(config=config).run(nodes="node01", image="rocky9-2025.09")


def test_list_images_newest_first_with_their_nodes(config):
    SetImageAction(config=config).run(nodes="node[01-02]", image="rocky9-2025.01")

    images = ListImagesAction(config=config).run()

    assert [image["name"] for image in images] == list(reversed(IMAGES))
    assert images[2]["nodes"] == "node[01-02]"
    assert images[0]["nodes"] == ""
    assert images[3]["built"] == "1970-01-01T00:00:00+00:00"


def test_prune_keeps_the_newest_and_those_in_use(config):
    SetImageAction(config=config).run(nodes="node01", image="rocky9-2024.10")
    action = PruneImagesAction(config=config)

    planned = action.run(dry_run=True)
    assert planned["removed"] == ["rocky9-2025.01"]
    assert os.path.isdir(os.path.join(config["image_dir"], "rocky9-2025.01"))

    action.run(dry_run=False)
    assert not os.path.exists(os.path.join(config["image_dir"], "rocky9-2025.01"))
    assert os.path.isdir(os.path.join(config["image_dir"], "rocky9-2024.10"))
