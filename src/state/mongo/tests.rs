use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use super::*;
use crate::model::Digest;
use crate::state::contract::{self, applied, at, live, pack, release, run_record};
use crate::state::{Operation, Outcome};

/// The server `scripts/with-mongodb` started, or a real one.
fn test_url() -> String {
    std::env::var("PACKSYNC_TEST_MONGODB_URL").expect(
        "PACKSYNC_TEST_MONGODB_URL is not set: run the tests with `scripts/test` (or \
         `scripts/with-mongodb cargo test`), which starts a MongoDB-compatible server",
    )
}

fn layout() -> Layout {
    Layout {
        state_dir: "/var/lib/packsync".into(),
        packs_dir: "/opt/stackstorm/packs".into(),
        virtualenvs_dir: "/opt/stackstorm/virtualenvs".into(),
        configs_dir: "/opt/stackstorm/configs".into(),
    }
}

fn config(url: &str, database: &str) -> MongoConfig {
    MongoConfig {
        url: SecretUrl::new(url.to_string()),
        database: database.to_string(),
        collection_prefix: "packsync_".to_string(),
        timeout: Duration::from_secs(5),
    }
}

/// A database of its own for one test, dropped at the end of it.
struct TestDatabase {
    name: String,
    client: Client,
}

impl TestDatabase {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "packsync_unit_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let client = Client::with_uri_str(test_url()).unwrap();
        Self { name, client }
    }

    fn store(&self, host: &str) -> MongoStore {
        MongoStore::connect(&config(&test_url(), &self.name), host, layout()).unwrap()
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.client.database(&self.name).collection(name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = self.client.database(&self.name).drop().run();
    }
}

fn with_store(test: fn(&dyn StateStore)) {
    let database = TestDatabase::new();
    test(&database.store("st2-prod-1"));
}

contract::state_store_contract!(with_store);

/// The contract again, as on a server that refuses transactions: the entry goes first,
/// then the record.
mod without_transactions {
    use super::*;

    fn with_store(test: fn(&dyn StateStore)) {
        let database = TestDatabase::new();
        let store = database.store("st2-prod-1");
        store.transactions.store(false, Ordering::Relaxed);
        test(&store);
    }

    contract::state_store_contract!(with_store);
}

#[test]
fn hosts_sharing_a_database_see_only_their_own_documents() {
    let database = TestDatabase::new();
    let one = database.store("st2-prod-1");
    let two = database.store("st2-prod-2");
    let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
    let clush_2 = release("clush", "2.0.0", "1.17.0", at(5));
    let entry_1 = applied("clush", Operation::Install, None, &clush_1);
    let mut entry_2 = applied("clush", Operation::Install, None, &clush_2);
    entry_2.host = "st2-prod-2".to_string();
    one.save(&pack("clush"), &live(vec![clush_1.clone()]), Some(&entry_1))
        .unwrap();
    two.save(&pack("clush"), &live(vec![clush_2.clone()]), Some(&entry_2))
        .unwrap();
    one.record_run(&run_record("st2-prod-1", 0)).unwrap();
    two.record_run(&run_record("st2-prod-2", 5)).unwrap();

    assert_eq!(
        one.load().unwrap()[&pack("clush")],
        live(vec![clush_1.clone()])
    );
    assert_eq!(
        two.load().unwrap()[&pack("clush")],
        live(vec![clush_2.clone()])
    );
    assert_eq!(one.history(None, None).unwrap(), [entry_1]);
    assert_eq!(two.history(None, None).unwrap(), [entry_2]);
    assert_eq!(one.runs(None).unwrap(), [run_record("st2-prod-1", 0)]);
    let others = one.other_hosts().unwrap();
    assert_eq!(others.keys().collect::<Vec<_>>(), ["st2-prod-2"]);
    assert_eq!(others["st2-prod-2"][&pack("clush")], live(vec![clush_2]));
    assert_eq!(
        two.other_hosts().unwrap()["st2-prod-1"][&pack("clush")],
        live(vec![clush_1])
    );
}

/// The fields operators query, as the README documents them.
#[test]
fn the_documents_have_the_documented_shape() {
    let database = TestDatabase::new();
    let store = database.store("st2-prod-1");
    let clush = release("clush", "1.0.0", "1.16.0", at(0));
    let entry = applied("clush", Operation::Install, None, &clush);
    store
        .save(&pack("clush"), &live(vec![clush.clone()]), Some(&entry))
        .unwrap();

    let record = database
        .collection("packsync_releases")
        .find_one(doc! { "host": "st2-prod-1", "pack": "clush" })
        .run()
        .unwrap()
        .unwrap();
    assert_eq!(record.get_str("status").unwrap(), "live");
    let active = record.get_document("active").unwrap();
    assert_eq!(active.get_str("id").unwrap(), clush.id.as_str());
    assert_eq!(active.get_datetime("activated_at").unwrap(), &date(at(0)));
    assert_eq!(
        active.get_str("release_dir").unwrap(),
        format!("/var/lib/packsync/releases/clush/{}", clush.id)
    );
    assert_eq!(
        active.get_str("pack_dir").unwrap(),
        "/opt/stackstorm/packs/clush"
    );
    let revision = active.get_document("revision").unwrap();
    assert_eq!(revision.get_str("version").unwrap(), "1.0.0");
    assert_eq!(revision.get_str("commit").unwrap(), clush.revision.commit);
    assert!(record.get_datetime("updated_at").is_ok());
    assert_eq!(record.get_array("releases").unwrap().len(), 1);

    let change = database
        .collection("packsync_history")
        .find_one(doc! {})
        .run()
        .unwrap()
        .unwrap();
    for (key, value) in [
        ("host", "st2-prod-1"),
        ("pack", "clush"),
        ("action", "install"),
        ("outcome", "applied"),
        ("run", entry.run.as_str()),
    ] {
        assert_eq!(change.get_str(key).unwrap(), value, "{key}");
    }
    assert_eq!(change.get_datetime("time").unwrap(), &date(at(0)));
    assert_eq!(change.get_i64("duration_ms").unwrap(), 8_412);

    let indexes = database
        .collection("packsync_releases")
        .list_index_names()
        .run()
        .unwrap();
    assert!(
        indexes.contains(&"host_1_pack_1".to_string()),
        "{indexes:?}"
    );
}

/// The record and its entry go in one transaction: when the entry cannot be written, the
/// record stays as it was.
#[test]
fn a_step_whose_history_entry_fails_leaves_the_record_as_it_was() {
    let database = TestDatabase::new();
    let store = database.store("st2-prod-1");
    let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
    let clush_2 = release("clush", "1.1.0", "1.16.0", at(10));
    let entry = applied("clush", Operation::Install, None, &clush_1);
    store
        .save(&pack("clush"), &live(vec![clush_1.clone()]), Some(&entry))
        .unwrap();
    // A second entry with the same `run` is refused by this index.
    database
        .collection("packsync_history")
        .create_index(
            IndexModel::builder()
                .keys(doc! { "run": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .run()
        .unwrap();
    let mut upgrade = applied("clush", Operation::Upgrade, Some(&clush_1), &clush_2);
    upgrade.run.clone_from(&entry.run);
    let record_2 = live(vec![clush_2, clush_1.clone()]);
    store
        .save(&pack("clush"), &record_2, Some(&upgrade))
        .unwrap_err();
    assert_eq!(
        store.load().unwrap()[&pack("clush")],
        live(vec![clush_1]),
        "the record is not switched without its entry"
    );
    assert_eq!(store.history(None, None).unwrap(), [entry]);
}

#[test]
fn registered_packs_come_from_stackstorms_pack_d_b() {
    let database = TestDatabase::new();
    let store = database.store("st2-prod-1");
    assert_eq!(store.registered_packs().unwrap(), None);
    database
        .collection(ST2_PACKS)
        .insert_many([
            doc! { "ref": "clush", "name": "clush", "version": "1.8.1",
            "path": "/opt/stackstorm/packs/clush", "uid": "pack:clush" },
            doc! { "ref": "core", "name": "core", "version": "3.8.1" },
            doc! { "ref": "Not A Pack", "version": "1" },
        ])
        .run()
        .unwrap();
    let registered = store.registered_packs().unwrap().unwrap();
    assert_eq!(
        registered,
        BTreeMap::from([
            (
                pack("clush"),
                RegisteredPack {
                    version: "1.8.1".to_string(),
                    path: Some("/opt/stackstorm/packs/clush".to_string()),
                }
            ),
            (
                pack("core"),
                RegisteredPack {
                    version: "3.8.1".to_string(),
                    path: None,
                }
            ),
        ])
    );
}

#[test]
fn import_copies_the_file_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = FileStore::new(dir.path());
    let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
    let clush_2 = release("clush", "1.1.0", "1.16.0", at(10));
    let slurm = release("slurm", "0.3.0", "1.16.0", at(1));
    let entries = [
        applied("clush", Operation::Install, None, &clush_1),
        applied("slurm", Operation::Install, None, &slurm),
        applied("clush", Operation::Upgrade, Some(&clush_1), &clush_2),
    ];
    file.save(
        &pack("clush"),
        &live(vec![clush_1.clone()]),
        Some(&entries[0]),
    )
    .unwrap();
    file.save(&pack("slurm"), &live(vec![slurm]), Some(&entries[1]))
        .unwrap();
    file.save(
        &pack("clush"),
        &live(vec![clush_2, clush_1]),
        Some(&entries[2]),
    )
    .unwrap();
    file.record_run(&run_record("st2-prod-1", 0)).unwrap();
    file.record_run(&run_record("st2-prod-1", 10)).unwrap();
    let switch = RunnerSwitch {
        at: at(3),
        run: "run-3".into(),
        host: "st2-prod-1".into(),
        operation: Operation::Install,
        from: None,
        to: Digest::sha256(b"set"),
        runners: vec!["clush-runner 1.2.0".into()],
        outcome: Outcome::Applied,
        error: None,
        duration_ms: 800,
    };
    file.record_runner_switch(&switch).unwrap();

    let database = TestDatabase::new();
    let store = database.store("st2-prod-1");
    let imported = store.import(&file).unwrap();
    assert_eq!(
        imported,
        Imported {
            records: 2,
            history: 3,
            runs: 2,
            runner_switches: 1,
        }
    );
    assert_eq!(store.load().unwrap(), file.load().unwrap());
    assert_eq!(
        store.history(None, None).unwrap(),
        file.history(None, None).unwrap()
    );
    assert_eq!(store.runs(None).unwrap(), file.runs(None).unwrap());

    let again = store.import(&file).unwrap();
    assert_eq!(
        again,
        Imported {
            records: 2,
            history: 0,
            runs: 0,
            runner_switches: 0,
        }
    );
    assert_eq!(store.history(None, None).unwrap().len(), 3);
    assert_eq!(store.runner_switches(None).unwrap(), [switch]);
    assert_eq!(store.runs(None).unwrap().len(), 2);
}

#[test]
fn an_unreachable_server_is_named_and_the_password_is_not() {
    let mut config = config("mongodb://packsync:hunter2@127.0.0.1:1/", "st2");
    config.timeout = Duration::from_millis(300);
    let store = MongoStore::connect(&config, "st2-prod-1", layout()).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StateError::Unreachable { .. }), "{err:?}");
    let shown = format!("{err} {err:?} {}", store.describe());
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}
