//! The MongoDB state store end to end: servers that are down, killed mid-run, shared by two
//! hosts, without transactions, with authentication; the import from the embedded store.
//! The apply scenarios of `apply.rs` run on MongoDB too.

#![allow(clippy::unwrap_used, reason = "test helpers panic on failure")]

use mongodb::bson::doc;

use crate::common::mongo::{self, Server};
use crate::common::site::{
    Backend, PackEntry, TestSite, assert_exit, packsync_snapshot, run, run_json, three_packs,
};

/// A password that must never show in any output.
const PASSWORD: &str = "Zq8-never-shown";

#[test]
fn a_server_down_at_start_fails_the_run_before_anything_changes() {
    let mut server = Server::start(&[]);
    let mut site = three_packs(Backend::File);
    site.mongodb(&server.url(), "st2");
    server.kill();
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 1
    ----- stdout -----

    ----- stderr -----
    error: Failed to read the installed state
      Caused by: Failed to reach the MongoDB state store at [MONGODB]: [MONGODB]: I/O error: Connection refused (os error 111)

    hint: check that MongoDB runs and that `[state] url` of the site config names it (and `timeout`, for a slow network); nothing was changed
    ");
    assert!(!site.packs_dir().exists(), "nothing was installed");
    assert!(
        !site.state_dir().join("releases").exists(),
        "nothing was built"
    );
}

#[test]
fn a_server_killed_mid_run_leaves_what_went_live_live_and_the_next_run_records_it() {
    let mut server = Server::start(&[]);
    let mut site = three_packs(Backend::File);
    site.mongodb(&server.url(), "st2");
    // The first registration kills the server: every record of this run is lost.
    let register = site.engine_script(
        "register",
        &format!(
            "echo \"register $1\" >> \"$LOG\"\nkill -9 {} 2>/dev/null\nexit 0\n",
            server.pid()
        ),
    );
    site.stackstorm_line(&format!(
        "register = ['{}', '{{pack}}']",
        register.display()
    ));
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert!(output.contains("Apply: 3 applied"), "{output}");
    assert!(
        output.contains("Failed to reach the MongoDB state store"),
        "the lost run record is reported: {output}"
    );
    for pack in ["alpha", "mid", "zulu"] {
        assert!(site.packs_dir().join(pack).join("pack.yaml").is_file());
    }

    // Issue 21: what the store missed was held on disk.
    let held = fs_err::read_to_string(site.state_dir().join("held.jsonl")).unwrap();
    assert_eq!(held.lines().count(), 4, "three steps and the run: {held}");

    server.restart();
    // The next run writes it first: the steps keep their own history, nothing needs repair.
    let output = assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    assert!(!output.contains("repaired"), "{output}");
    assert!(!site.state_dir().join("held.jsonl").exists());
    let status = run_json(site.cmd(["--json", "status"]));
    for pack in status["packs"].as_array().unwrap() {
        assert_eq!(pack["state"], "ok", "{pack}");
    }
    let history = run_json(site.cmd(["--json", "history"]));
    let actions: Vec<(&str, &str)> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["pack"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    let mut installed: Vec<&str> = actions
        .iter()
        .filter(|(_, action)| *action == "install")
        .map(|(pack, _)| *pack)
        .collect();
    installed.sort_unstable();
    assert_eq!(installed, ["alpha", "mid", "zulu"], "{history}");
    assert!(
        !actions.iter().any(|(_, action)| *action == "repair"),
        "{history}"
    );
}

#[test]
fn two_hosts_share_one_database_without_touching_each_other() {
    let mut one = three_packs(Backend::MongoDb);
    let (url, database) = one.mongodb_database().unwrap().clone();
    one.agent_line("host = \"st2-one\"");
    let mut two = TestSite::new();
    let clush = two.pack_repo("clush", "1.0.0");
    two.add_pack(PackEntry::new("clush", clush.path()))
        .agent_line("host = \"st2-two\"")
        .mongodb(&url, &database);
    assert_exit(one.cmd(["apply"]), 0);
    assert_exit(two.cmd(["apply"]), 0);
    // Each host plans from its own records: nothing to do on either.
    assert_exit(one.cmd(["apply", "--detailed-exitcodes"]), 0);
    assert_exit(two.cmd(["apply", "--detailed-exitcodes"]), 0);
    assert_eq!(
        run_json(one.cmd(["--json", "history"]))["entries"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        run_json(two.cmd(["--json", "history"]))["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let status = run_json(one.cmd(["--json", "status", "--all-hosts"]));
    assert_eq!(status["host"], "st2-one");
    assert_eq!(status["packs"].as_array().unwrap().len(), 3);
    let others = status["other_hosts"].as_array().unwrap();
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["host"], "st2-two");
    assert_eq!(others[0]["packs"][0]["pack"], "clush");
    assert_eq!(others[0]["packs"][0]["state"], "ok");
    assert_eq!(others[0]["packs"][0]["active"]["version"], "1.0.0");
    packsync_snapshot!(two, two.cmd(["status", "--all-hosts"]), @r#"
    exit_code: 0
    ----- stdout -----
    PACK   STATE  DESIRED  LIVE                                            LAST CHANGE
    clush  ok     HEAD     1.0.0-[SHORT]-[INPUTS] (HEAD) env 7a8a9fcae232  [TIME] UTC install applied

    Host st2-two (this host): 1 packs

    Host st2-one
    PACK   STATE  LIVE                                            SINCE
    alpha  ok     1.0.0-[SHORT]-[INPUTS] (HEAD) env 7a8a9fcae232  [TIME] UTC
    mid    ok     2.0.0-[SHORT]-[INPUTS] (HEAD) env 7a8a9fcae232  [TIME] UTC
    zulu   ok     0.3.0-[SHORT]-[INPUTS] (HEAD) env 7a8a9fcae232  [TIME] UTC

    ----- stderr -----
    "#);
}

/// A standalone server, not a replica set. (SecantusDB takes transactions even then, so the
/// path without them is covered by the store's unit tests.)
#[test]
fn a_standalone_server_records_every_step() {
    let server = Server::start(&["--standalone"]);
    let mut site = three_packs(Backend::File);
    site.mongodb(&server.url(), "st2");
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 2);
    assert_exit(site.cmd(["apply", "--detailed-exitcodes"]), 0);
    let history = run_json(site.cmd(["--json", "history"]));
    assert_eq!(history["entries"].as_array().unwrap().len(), 3);
}

#[test]
fn import_copies_the_embedded_store_once_and_apply_goes_on_from_it() {
    let mut site = three_packs(Backend::File);
    assert_exit(site.cmd(["apply"]), 0);
    let file_history = run_json(site.cmd(["--json", "history"]));
    site.mongodb(&mongo::url(), &mongo::unique_database());
    packsync_snapshot!(site, site.cmd(["state", "import"]), @"
    exit_code: 0
    ----- stdout -----
    Imported from `[TEMP]/state/state.json` into MongoDB at [MONGODB] (database `[DATABASE]`): 3 pack records, 3 history entries, 1 runs, 0 runner switches (entries, runs and switches already there were skipped)

    ----- stderr -----
    ");
    let again = run_json(site.cmd(["--json", "state", "import"]));
    assert_eq!(again["records"], 3);
    assert_eq!(again["history"], 0);
    assert_eq!(again["runs"], 0);
    assert_eq!(run_json(site.cmd(["--json", "history"])), file_history);
    // The imported records agree with disk: no repair, nothing to change.
    packsync_snapshot!(site, site.cmd(["apply", "--detailed-exitcodes"]), @"
    exit_code: 0
    ----- stdout -----
    Apply: nothing to change (3 unchanged) in [DURATION]

    ----- stderr -----
    ");
}

#[test]
fn import_without_a_mongodb_store_says_how_to_add_one() {
    let site = TestSite::new();
    packsync_snapshot!(site, site.cmd(["state", "import"]), @"
    exit_code: 1
    ----- stdout -----

    ----- stderr -----
    error: The site config `[TEMP]/packsync.toml` keeps the state in the embedded store: there is nothing to import into

    hint: add a `[state]` section with the MongoDB `url` to the site config, then run `packsync state import` again
    ");
}

#[test]
fn the_password_is_never_printed() {
    let mut server = Server::start(&[]);
    let admin = mongodb::sync::Client::with_uri_str(server.url()).unwrap();
    admin
        .database("admin")
        .run_command(doc! {
            "createUser": "packsync",
            "pwd": PASSWORD,
            "roles": [{ "role": "readWrite", "db": "st2" }],
        })
        .run()
        .unwrap();
    drop(admin);
    server.restart_with(&["--auth"]);
    let url = |password: &str| {
        format!(
            "mongodb://packsync:{password}@127.0.0.1:{}/?authSource=admin",
            server.port()
        )
    };

    let mut site = three_packs(Backend::File);
    site.mongodb(&url(PASSWORD), "st2");
    let mut outputs = vec![assert_exit(site.cmd(["-vv", "apply"]), 0)];
    for args in [
        &["--json", "apply", "--noop"][..],
        &["--json", "status", "--all-hosts"],
        &["--json", "history"],
        &["-vv", "plan"],
        &["--json", "check"],
    ] {
        outputs.push(run(site.cmd(args)));
    }
    site.mongodb(&url("wrong-password"), "st2");
    let refused = assert_exit(site.cmd(["-vv", "apply"]), 1);
    assert!(
        refused.contains("refused packsync's credentials"),
        "{refused}"
    );
    outputs.push(refused);
    site.mongodb(&url(PASSWORD), "st2");
    server.kill();
    let down = assert_exit(site.cmd(["-vv", "status"]), 1);
    assert!(down.contains("Failed to reach"), "{down}");
    outputs.push(down);
    for output in outputs {
        assert!(
            !output.contains(PASSWORD),
            "the password shows in:\n{output}"
        );
    }
}
