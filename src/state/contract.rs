//! The contract every [`StateStore`] backend keeps, as test functions that each take a fresh,
//! empty store: a backend's tests call every one of them (see `file.rs`).
//!
//! Also the fixtures that build realistic records and history entries.

// The fixtures build constant, valid values.
#![allow(clippy::unwrap_used, reason = "test fixtures")]

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{
    ActiveRelease, Failure, HistoryEntry, Operation, Outcome, PackRecord, ReleaseRecord, RunRecord,
    RunnerSwitch, StateStore, installed,
};
use crate::activate::Adoption;
use crate::model::{Digest, EnvInputs, PackName, Pin, ReleaseId, Revision, Suspension};

pub(super) fn pack(name: &str) -> PackName {
    PackName::new(name).unwrap()
}

/// A moment `minutes` after the first install of these fixtures.
pub(super) fn at(minutes: i64) -> jiff::Timestamp {
    let start: jiff::Timestamp = "2025-06-02T09:30:00Z".parse().unwrap();
    start
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap()
}

/// The inputs of a virtualenv that needs `six`, at `six_version` in the mirror.
pub(super) fn env_inputs(six_version: &str) -> EnvInputs {
    let file = format!("six-{six_version}-py2.py3-none-any.whl");
    EnvInputs {
        python: "cpython-3.11.7-x86_64-linux-gnu /opt/stackstorm/st2/bin/python3".to_string(),
        settings: vec![
            "system-site-packages".to_string(),
            "st2-pth /opt/stackstorm/st2/lib/python3.11/site-packages".to_string(),
        ],
        requirements: vec!["six>=1.9.0,<2.0".to_string()],
        pins: vec![Pin {
            name: "six".to_string(),
            version: six_version.to_string(),
            sha256: Digest::sha256(file.as_bytes()).hex().to_string(),
            file,
        }],
    }
}

/// A full commit id, made up from `seed`.
fn commit(seed: &str) -> String {
    Digest::sha256(seed.as_bytes()).hex()[..40].to_string()
}

/// A sealed release of `pack` at `version` built against `six_version`.
pub(super) fn release(
    pack: &str,
    version: &str,
    six_version: &str,
    built_at: jiff::Timestamp,
) -> ReleaseRecord {
    let env_inputs = env_inputs(six_version);
    let revision = Revision {
        commit: commit(&format!("{pack} {version}")),
        version: version.parse().unwrap(),
        git_ref: format!("v{version}"),
        tree: Digest::git_tree(&commit(&format!("{pack} {version} tree"))),
        env: env_inputs.digest(),
        config: Digest::sha256(br#"{"fanout":16}"#),
    };
    ReleaseRecord {
        id: ReleaseId::of(&revision),
        revision,
        env_inputs,
        built_at,
    }
}

/// A pack whose first release is live since it was built; the others are kept.
pub(super) fn live(releases: Vec<ReleaseRecord>) -> PackRecord {
    let active = releases.first().map(|release| ActiveRelease {
        id: release.id.clone(),
        since: release.built_at,
    });
    PackRecord {
        active,
        releases,
        ..PackRecord::default()
    }
}

/// A successful step of `pack` that made `to` live, coming from `from`.
pub(super) fn applied(
    pack_name: &str,
    operation: Operation,
    from: Option<&ReleaseRecord>,
    to: &ReleaseRecord,
) -> HistoryEntry {
    HistoryEntry {
        at: to.built_at,
        run: format!("run-{}", to.built_at.as_second()),
        host: "st2-prod-1".to_string(),
        pack: pack(pack_name),
        operation,
        from: from.map(|r| r.revision.clone()),
        to: Some(to.revision.clone()),
        release: Some(to.id.clone()),
        outcome: Outcome::Applied,
        error: None,
        duration_ms: 8_412,
    }
}

/// Nothing saved: no record, no history.
pub(crate) fn an_empty_store_has_no_records_and_no_history(store: &dyn StateStore) {
    assert!(store.load().unwrap().is_empty());
    assert!(store.history(None, None).unwrap().is_empty());
    assert!(
        store
            .history(Some(&pack("clush")), Some(5))
            .unwrap()
            .is_empty()
    );
}

/// Records are kept per pack; saving one replaces it and leaves the others.
pub(crate) fn save_and_load(store: &dyn StateStore) {
    let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
    let slurm_1 = release("slurm", "0.3.0", "1.16.0", at(1));
    store
        .save(&pack("clush"), &live(vec![clush_1.clone()]), None)
        .unwrap();
    store
        .save(&pack("slurm"), &live(vec![slurm_1.clone()]), None)
        .unwrap();
    let upgraded = live(vec![release("clush", "1.1.0", "1.17.0", at(2)), clush_1]);
    store.save(&pack("clush"), &upgraded, None).unwrap();

    let records = store.load().unwrap();
    let expected = BTreeMap::from([
        (pack("clush"), upgraded),
        (pack("slurm"), live(vec![slurm_1])),
    ]);
    assert_eq!(records, expected);
    assert!(
        store.history(None, None).unwrap().is_empty(),
        "saves without an entry write no history"
    );
}

/// Every field of a record and of a history entry comes back as it was saved.
pub(crate) fn record_and_history_roundtrip(store: &dyn StateStore) {
    let old = release("clush", "1.0.0", "1.16.0", at(0));
    let new = release("clush", "1.1.0", "1.17.0", at(30));
    let record = PackRecord {
        active: Some(ActiveRelease {
            id: old.id.clone(),
            since: at(31),
        }),
        releases: vec![new.clone(), old.clone()],
        last_failure: Some(Failure {
            at: at(31),
            operation: Operation::Upgrade,
            revision: Some(new.revision.clone()),
            error: "Registering pack `clush` failed: `st2ctl reload` exited with 1".to_string(),
        }),
        adopted: vec![Adoption {
            from: PathBuf::from("/opt/stackstorm/packs/clush"),
            to: PathBuf::from("/var/lib/packsync/adopted/clush-20250602T093000Z"),
        }],
        unpurged: true,
    };
    let entry = HistoryEntry {
        outcome: Outcome::Reverted,
        error: record.last_failure.as_ref().map(|f| f.error.clone()),
        ..applied("clush", Operation::Upgrade, Some(&old), &new)
    };
    store.save(&pack("clush"), &record, Some(&entry)).unwrap();
    assert_eq!(store.load().unwrap()[&pack("clush")], record);
    assert_eq!(store.history(None, None).unwrap(), [entry]);
}

/// A removed pack keeps its record, with no live release, and is not installed.
pub(crate) fn a_removed_pack_keeps_its_releases(store: &dyn StateStore) {
    let clush = release("clush", "1.0.0", "1.16.0", at(0));
    store
        .save(&pack("clush"), &live(vec![clush.clone()]), None)
        .unwrap();
    let removed = PackRecord {
        active: None,
        ..live(vec![clush.clone()])
    };
    let entry = HistoryEntry {
        at: at(60),
        to: None,
        release: None,
        duration_ms: 310,
        ..applied("clush", Operation::Remove, Some(&clush), &clush)
    };
    store.save(&pack("clush"), &removed, Some(&entry)).unwrap();
    let records = store.load().unwrap();
    assert_eq!(records[&pack("clush")], removed);
    assert!(installed(&records).is_empty());
    assert_eq!(store.history(None, None).unwrap(), [entry]);
}

/// History comes newest first, of one pack or all, at most `limit`.
pub(crate) fn history_newest_first_and_filtered(store: &dyn StateStore) {
    let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
    let slurm_1 = release("slurm", "0.3.0", "1.16.0", at(1));
    let clush_2 = release("clush", "1.1.0", "1.16.0", at(10));
    let slurm_2 = release("slurm", "0.3.0", "1.17.0", at(11));
    let steps = [
        (
            live(vec![clush_1.clone()]),
            applied("clush", Operation::Install, None, &clush_1),
        ),
        (
            live(vec![slurm_1.clone()]),
            applied("slurm", Operation::Install, None, &slurm_1),
        ),
        (
            live(vec![clush_2.clone(), clush_1.clone()]),
            applied("clush", Operation::Upgrade, Some(&clush_1), &clush_2),
        ),
        (
            live(vec![slurm_2.clone(), slurm_1.clone()]),
            applied("slurm", Operation::Rebuild, Some(&slurm_1), &slurm_2),
        ),
        (
            PackRecord {
                active: Some(ActiveRelease {
                    id: clush_1.id.clone(),
                    since: at(20),
                }),
                ..live(vec![clush_2.clone(), clush_1.clone()])
            },
            HistoryEntry {
                at: at(20),
                run: "rollback-1".to_string(),
                ..applied("clush", Operation::Rollback, Some(&clush_2), &clush_1)
            },
        ),
    ];
    let entries: Vec<HistoryEntry> = steps.iter().map(|(_, entry)| entry.clone()).collect();
    for (record, entry) in &steps {
        store.save(&entry.pack, record, Some(entry)).unwrap();
    }

    let newest_first: Vec<HistoryEntry> = entries.iter().rev().cloned().collect();
    assert_eq!(store.history(None, None).unwrap(), newest_first);
    assert_eq!(store.history(None, Some(2)).unwrap(), newest_first[..2]);
    let clush: Vec<HistoryEntry> = newest_first
        .iter()
        .filter(|e| e.pack == pack("clush"))
        .cloned()
        .collect();
    assert_eq!(clush.len(), 3);
    assert_eq!(store.history(Some(&pack("clush")), None).unwrap(), clush);
    assert_eq!(
        store.history(Some(&pack("clush")), Some(2)).unwrap(),
        clush[..2]
    );
    assert_eq!(
        store.history(Some(&pack("slurm")), Some(9)).unwrap(),
        [entries[3].clone(), entries[1].clone()]
    );
    assert!(store.history(None, Some(0)).unwrap().is_empty());
    assert!(
        store
            .history(Some(&pack("absent")), None)
            .unwrap()
            .is_empty()
    );
}

/// The worker threads of one run save their packs at the same time: no update is lost.
pub(crate) fn concurrent_saves_of_different_packs_are_kept(store: &dyn StateStore) {
    const PACKS: usize = 8;
    const SAVES: usize = 5;
    let names: Vec<PackName> = (0..PACKS).map(|i| pack(&format!("pack_{i}"))).collect();
    std::thread::scope(|scope| {
        for name in &names {
            scope.spawn(move || {
                let mut releases: Vec<ReleaseRecord> = Vec::new();
                for step in 0..SAVES {
                    let built_at = at(i64::try_from(step).unwrap());
                    let next = release(name.as_str(), &format!("1.{step}.0"), "1.17.0", built_at);
                    let operation = if step == 0 {
                        Operation::Install
                    } else {
                        Operation::Upgrade
                    };
                    let entry = applied(name.as_str(), operation, releases.first(), &next);
                    releases.insert(0, next);
                    store
                        .save(name, &live(releases.clone()), Some(&entry))
                        .unwrap();
                }
            });
        }
    });

    let records = store.load().unwrap();
    assert_eq!(records.len(), PACKS);
    for name in &names {
        let record = &records[name];
        assert_eq!(
            record.releases.len(),
            SAVES,
            "every save of `{name}` is kept"
        );
        assert_eq!(
            record
                .active_release()
                .unwrap()
                .revision
                .version
                .to_string(),
            format!("1.{}.0", SAVES - 1)
        );
        let history = store.history(Some(name), None).unwrap();
        let versions: Vec<String> = history
            .iter()
            .map(|e| e.to.as_ref().unwrap().version.to_string())
            .collect();
        let expected: Vec<String> = (0..SAVES).rev().map(|s| format!("1.{s}.0")).collect();
        assert_eq!(
            versions, expected,
            "the history of `{name}` is newest first"
        );
    }
    assert_eq!(store.history(None, None).unwrap().len(), PACKS * SAVES);
}

/// A run of `host` that started `minutes` after the first install and installed one pack.
pub(super) fn run_record(host: &str, minutes: i64) -> RunRecord {
    RunRecord {
        run: format!("run-{minutes}"),
        host: host.to_string(),
        started_at: at(minutes),
        finished_at: at(minutes + 1),
        noop: false,
        exit_code: 2,
        applied: BTreeMap::from([(Operation::Install, 1)]),
        failed: BTreeMap::from([(Operation::Upgrade, 1)]),
        planned: 2,
        unchanged: 5,
    }
}

/// Runs are kept whole and read back newest first.
pub(crate) fn runs_roundtrip_newest_first(store: &dyn StateStore) {
    assert!(store.runs(None).unwrap().is_empty());
    let runs: Vec<RunRecord> = (0..3).map(|i| run_record("st2-prod-1", i * 10)).collect();
    for run in &runs {
        store.record_run(run).unwrap();
    }
    let newest_first: Vec<RunRecord> = runs.iter().rev().cloned().collect();
    assert_eq!(store.runs(None).unwrap(), newest_first);
    assert_eq!(store.runs(Some(1)).unwrap(), newest_first[..1]);
    assert!(store.runs(Some(0)).unwrap().is_empty());
}

pub(crate) fn runner_switches_roundtrip_newest_first(store: &dyn StateStore) {
    assert!(store.runner_switches(None).unwrap().is_empty());
    let first = RunnerSwitch {
        at: at(0),
        run: "run-0".into(),
        host: "st2-prod-1".into(),
        operation: Operation::Install,
        from: None,
        to: Digest::sha256(b"set 1"),
        runners: vec!["clush-runner 1.2.0".into()],
        outcome: Outcome::Applied,
        error: None,
        duration_ms: 900,
    };
    let failed = RunnerSwitch {
        at: at(5),
        run: "run-5".into(),
        operation: Operation::Upgrade,
        from: Some(first.to.clone()),
        to: Digest::sha256(b"set 2"),
        outcome: Outcome::Reverted,
        error: Some("the runner health check failed".into()),
        ..first.clone()
    };
    store.record_runner_switch(&first).unwrap();
    store.record_runner_switch(&failed).unwrap();
    assert_eq!(
        store.runner_switches(None).unwrap(),
        [failed.clone(), first]
    );
    assert_eq!(store.runner_switches(Some(1)).unwrap(), [failed]);
}

pub(crate) fn suspensions_replace_and_resume(store: &dyn StateStore) {
    assert!(store.suspensions().unwrap().is_empty());
    let clush = Suspension {
        pack: Some(pack("clush")),
        reason: "maintenance".into(),
        at: at(0),
    };
    let host = Suspension {
        pack: None,
        reason: "st2 upgrade".into(),
        at: at(1),
    };
    store.suspend(&clush).unwrap();
    store.suspend(&host).unwrap();
    let again = Suspension {
        reason: "still maintenance".into(),
        ..clush.clone()
    };
    store.suspend(&again).unwrap();
    let mut found = store.suspensions().unwrap();
    found.sort_by(|a, b| a.pack.cmp(&b.pack));
    assert_eq!(found, [host.clone(), again]);
    assert!(store.resume(Some(&pack("clush"))).unwrap());
    assert!(!store.resume(Some(&pack("clush"))).unwrap());
    assert_eq!(store.suspensions().unwrap(), [host]);
    assert!(store.resume(None).unwrap());
    assert!(store.suspensions().unwrap().is_empty());
}

/// Generates a `#[test]` for every contract test, each run by `$with_store`, a
/// `fn(fn(&dyn StateStore))` that calls the test with a fresh, empty store of the backend.
macro_rules! state_store_contract {
    ($with_store:path) => {
        $crate::state::contract::state_store_contract!(@tests $with_store;
            an_empty_store_has_no_records_and_no_history,
            save_and_load,
            record_and_history_roundtrip,
            a_removed_pack_keeps_its_releases,
            history_newest_first_and_filtered,
            concurrent_saves_of_different_packs_are_kept,
            runs_roundtrip_newest_first,
            runner_switches_roundtrip_newest_first,
            suspensions_replace_and_resume,
        );
    };
    (@tests $with_store:path; $($test:ident,)*) => {
        $(
            #[test]
            fn $test() {
                $with_store($crate::state::contract::$test);
            }
        )*
    };
}
pub(crate) use state_store_contract;
