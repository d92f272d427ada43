//! `packsync suspend` and `resume`: held-back packs and hosts, on both state backends.

use crate::common::site::{Backend, PackEntry, TestSite, assert_exit, pack_yaml};

fn suspend_a_pack_then_the_host(backend: Backend) {
    let mut site = TestSite::on(backend);
    let clush = site.pack_repo("clush", "1.0.0");
    let slurm = site.pack_repo("slurm", "2.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .add_pack(PackEntry::new("slurm", slurm.path()));
    assert_exit(site.cmd(["apply"]), 0);
    clush.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    clush.commit("clush 1.1.0");

    let output = assert_exit(
        site.cmd(["suspend", "clush", "--reason", "change freeze"]),
        0,
    );
    assert!(
        output.contains("Suspended pack `clush` (change freeze)"),
        "{output}"
    );
    let plan = assert_exit(site.cmd(["plan", "--detailed-exitcodes"]), 0);
    assert!(plan.contains("unchanged   clush"), "{plan}");
    assert!(
        plan.contains("suspended (change freeze): the upgrade waits for `packsync resume`"),
        "{plan}"
    );
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    let status = assert_exit(site.cmd(["status"]), 0);
    assert!(status.contains("suspended (change freeze)"), "{status}");

    // The whole host: apply is skipped (75), plan says why.
    assert_exit(site.cmd(["suspend", "--reason", "st2 upgrade"]), 0);
    let output = assert_exit(site.cmd(["apply"]), 75);
    assert!(output.contains("This host is suspended since "), "{output}");
    assert!(
        output.contains("(st2 upgrade): nothing changes"),
        "{output}"
    );
    let plan = assert_exit(site.cmd(["plan"]), 0);
    assert!(
        plan.contains("note: this host is suspended since "),
        "{plan}"
    );

    assert_exit(site.cmd(["resume"]), 0);
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    let output = assert_exit(site.cmd(["resume", "clush"]), 0);
    assert!(output.contains("Resumed pack `clush`"), "{output}");
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("upgraded     clush"), "{output}");
    let output = assert_exit(site.cmd(["resume", "clush"]), 0);
    assert!(
        output.contains("pack `clush` was not suspended"),
        "{output}"
    );
}

#[test]
fn suspend_a_pack_then_the_host_file_store() {
    suspend_a_pack_then_the_host(Backend::File);
}

#[test]
fn suspend_a_pack_then_the_host_mongodb() {
    suspend_a_pack_then_the_host(Backend::MongoDb);
}
