//! The plan, case by case, over constructed values: no temp dirs, no Git.

use std::path::PathBuf;

use super::*;
use crate::model::{Digest, FailedBuild, Pin, UnmanagedPack};

fn name(s: &str) -> PackName {
    PackName::new(s).unwrap()
}

fn inputs(reqs: &[&str], pins: &[(&str, &str, &str)]) -> EnvInputs {
    EnvInputs {
        python: "cpython-3.11.7".into(),
        settings: vec!["system-site-packages".into()],
        requirements: reqs.iter().map(ToString::to_string).collect(),
        pins: pins
            .iter()
            .map(|(name, version, sha)| Pin {
                name: (*name).into(),
                version: (*version).into(),
                file: format!("{name}-{version}-py3-none-any.whl"),
                sha256: (*sha).into(),
            })
            .collect(),
    }
}

/// A desired pack: `tree` and `config` are labels turned into digests.
fn want(pack: &str, version: &str, tree: &str, env: EnvInputs, config: &str) -> DesiredPack {
    DesiredPack {
        name: name(pack),
        revision: Revision {
            commit: format!("{tree:0>40}"),
            version: version.parse().unwrap(),
            git_ref: "HEAD".into(),
            tree: Digest::git_tree(tree),
            env: env.digest(),
            config: Digest::sha256(config.as_bytes()),
        },
        env_inputs: env,
        dependencies: Vec::new(),
    }
}

fn have(pack: &DesiredPack) -> InstalledPack {
    InstalledPack {
        name: pack.name.clone(),
        revision: pack.revision.clone(),
        env_inputs: Some(pack.env_inputs.clone()),
        broken_links: Vec::new(),
        broken_env: None,
        engine_repair: None,
        tampered: None,
    }
}

fn installed(packs: &[InstalledPack]) -> Installed {
    Installed {
        packs: packs.iter().map(|p| (p.name.clone(), p.clone())).collect(),
        unmanaged: BTreeMap::new(),
        runners: None,
        runners_unhooked: false,
    }
}

fn desired(packs: Vec<DesiredPack>) -> Desired {
    Desired {
        packs,
        ..Desired::default()
    }
}

/// `pack action: reason; reason` per change.
fn summary(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .map(|c| {
            let reasons: Vec<String> = c.reasons.iter().map(ToString::to_string).collect();
            format!("{} {}: {}", c.pack, c.action, reasons.join("; "))
        })
        .collect()
}

fn plan_of(desired: &Desired, installed: &Installed) -> Vec<String> {
    summary(&plan(desired, installed, Prune::Off).unwrap())
}

#[test]
fn nothing_installed_installs_everything() {
    let d = desired(vec![want("clush", "1.8.1", "t1", inputs(&[], &[]), "c")]);
    let plan = plan(&d, &Installed::default(), Prune::Off).unwrap();
    assert_eq!(summary(&plan), ["clush install: not installed"]);
    assert!(plan.has_changes());
    assert_eq!(plan.changes[0].from, None);
    assert_eq!(plan.changes[0].to.as_ref(), Some(&d.packs[0].revision));
}

#[test]
fn every_action_case_by_case() {
    let env = inputs(&["six>=1.9"], &[("six", "1.16.0", "aa")]);
    let base = want("p", "1.2.0", "t1", env.clone(), "c1");
    let newer_env = inputs(&["six>=1.9"], &[("six", "1.17.0", "bb")]);
    let cases: Vec<(&str, DesiredPack, &str)> = vec![
        ("same everything", base.clone(), "p unchanged: "),
        (
            "newer version",
            want("p", "1.3.0", "t2", env.clone(), "c1"),
            "p upgrade: version 1.2.0 -> 1.3.0",
        ),
        (
            "older version",
            want("p", "1.1.0", "t0", env.clone(), "c1"),
            "p downgrade: version 1.2.0 -> 1.1.0",
        ),
        (
            "same version, other tree",
            want("p", "1.2.0", "t9", env.clone(), "c1"),
            "p upgrade: pack files changed, pack.yaml still says 1.2.0",
        ),
        (
            "env only",
            want("p", "1.2.0", "t1", newer_env.clone(), "c1"),
            "p rebuild: six 1.16.0 -> 1.17.0 (mirror)",
        ),
        (
            "config only",
            want("p", "1.2.0", "t1", env.clone(), "c2"),
            "p reconfigure: pack config changed",
        ),
        (
            "env and config",
            want("p", "1.2.0", "t1", newer_env.clone(), "c2"),
            "p rebuild: six 1.16.0 -> 1.17.0 (mirror); pack config changed",
        ),
        (
            "upgrade with env and config",
            want("p", "2.0.0", "t2", newer_env, "c2"),
            "p upgrade: version 1.2.0 -> 2.0.0; six 1.16.0 -> 1.17.0 (mirror); pack config changed",
        ),
    ];
    let current = installed(&[have(&base)]);
    for (what, pack, expected) in cases {
        assert_eq!(
            plan_of(&desired(vec![pack]), &current),
            [expected],
            "{what}"
        );
    }
}

#[test]
fn a_new_commit_with_the_same_content_is_unchanged_and_noted() {
    let env = inputs(&[], &[]);
    let old = want("p", "1.0.0", "t1", env.clone(), "c");
    let mut new = old.clone();
    new.revision.commit = "b".repeat(40);
    new.revision.git_ref = "main".into();
    let plan = plan(&desired(vec![new]), &installed(&[have(&old)]), Prune::Off).unwrap();
    assert!(!plan.has_changes());
    assert_eq!(
        summary(&plan),
        [
            "p unchanged: ref `HEAD` -> `main`; commit 0000000 -> bbbbbbb leaves the pack tree, env and config unchanged"
        ]
    );
}

#[test]
fn env_reasons_name_what_changed() {
    let old = inputs(
        &["a>=1", "b"],
        &[("a", "1.0", "x"), ("b", "2.0", "y"), ("c", "1.0", "z")],
    );
    let mut new = inputs(&["a>=1", "d"], &[("a", "1.0", "x2"), ("d", "0.1", "w")]);
    new.python = "cpython-3.12.1".into();
    let reasons: Vec<String> = env_reasons(Some(&old), &new)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        reasons,
        [
            "python cpython-3.11.7 -> cpython-3.12.1",
            "requirement added: d",
            "requirement removed: b",
            "a 1.0: mirror file changed",
            "d 0.1 added (mirror)",
            "b 2.0 dropped",
            "c 1.0 dropped",
        ]
    );
    assert_eq!(env_reasons(None, &new), [Reason::EnvChanged]);
}

#[test]
fn packs_that_left_the_config_are_orphans_or_removed() {
    let gone = want("gone", "1.0.0", "t", inputs(&[], &[]), "c");
    let current = installed(&[have(&gone)]);
    let none = Desired::default();
    assert_eq!(
        summary(&plan(&none, &current, Prune::Off).unwrap()),
        ["gone orphan: no longer in the site config; kept because prune is off"]
    );
    let pruned = plan(&none, &current, Prune::On).unwrap();
    assert_eq!(
        summary(&pruned),
        ["gone remove: no longer in the site config (prune is on)"]
    );
    assert!(pruned.has_changes());
    assert_eq!(pruned.changes[0].to, None);
}

#[test]
fn unresolved_and_disabled_packs_are_left_alone() {
    let a = want("a", "1.0.0", "t", inputs(&[], &[]), "c");
    let b = want("b", "1.0.0", "t", inputs(&[], &[]), "c");
    let current = installed(&[have(&a), have(&b)]);
    let d = Desired {
        packs: vec![],
        disabled: vec![name("a")],
        unresolved: vec![name("b")],
        suspended: BTreeMap::new(),
        failed_builds: BTreeMap::new(),
        runners: None,
    };
    let plan = plan(&d, &current, Prune::On).unwrap();
    assert_eq!(
        summary(&plan),
        ["a unchanged: disabled in the site config: left as installed"]
    );
    assert_eq!(plan.changes[0].from, plan.changes[0].to);
    assert!(!plan.has_changes());
}

#[test]
fn an_unmanaged_pack_dir_is_adopted() {
    let d = desired(vec![want("clush", "1.8.1", "t", inputs(&[], &[]), "c")]);
    let mut current = Installed::default();
    current.unmanaged.insert(
        name("clush"),
        UnmanagedPack {
            path: PathBuf::from("/opt/stackstorm/packs/clush"),
            version: Some("1.7.0".into()),
        },
    );
    assert_eq!(
        plan_of(&d, &current),
        [
            "clush install: takes over `/opt/stackstorm/packs/clush` (version 1.7.0), installed outside packsync; it is moved aside, not deleted"
        ]
    );
}

#[test]
fn dependencies_come_first_then_names() {
    let mut packs: Vec<DesiredPack> = ["diskless", "slurm", "clush", "alpha", "zeta"]
        .iter()
        .map(|n| want(n, "1.0.0", "t", inputs(&[], &[]), "c"))
        .collect();
    // diskless -> slurm -> clush; alpha -> zeta; unknown and self dependencies are ignored.
    packs[0].dependencies = vec![name("slurm"), name("clush"), name("not_in_site")];
    packs[1].dependencies = vec![name("clush"), name("slurm")];
    packs[3].dependencies = vec![name("zeta")];
    let plan = plan(&desired(packs), &Installed::default(), Prune::Off).unwrap();
    let order: Vec<&str> = plan.changes.iter().map(|c| c.pack.as_str()).collect();
    assert_eq!(order, ["clush", "slurm", "diskless", "zeta", "alpha"]);
}

#[test]
fn a_dependency_cycle_is_an_error_naming_it() {
    let mut packs: Vec<DesiredPack> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| want(n, "1.0.0", "t", inputs(&[], &[]), "c"))
        .collect();
    packs[0].dependencies = vec![name("b")];
    packs[1].dependencies = vec![name("c")];
    packs[2].dependencies = vec![name("b")];
    let err = plan(&desired(packs), &Installed::default(), Prune::Off).unwrap_err();
    assert_eq!(err, PlanError::DependencyCycle(vec![name("b"), name("c")]));
    assert_eq!(
        err.to_string(),
        "Packs depend on each other in a cycle: b -> c -> b"
    );
}

#[test]
fn summary_counts_every_action() {
    let a = want("a", "1.0.0", "t", inputs(&[], &[]), "c");
    let d = desired(vec![
        a.clone(),
        want("b", "1.0.0", "t", inputs(&[], &[]), "c"),
    ]);
    let plan = plan(&d, &installed(&[have(&a)]), Prune::Off).unwrap();
    let counts = plan.counts();
    assert_eq!(counts[&Action::Install], 1);
    assert_eq!(counts[&Action::Unchanged], 1);
    assert_eq!(counts[&Action::Remove], 0);
    assert_eq!(counts.len(), Action::ALL.len());
}

/// The inputs of a runner set asking for `clush-runner==1.2.*` and resolving to `version`.
fn runner_set(version: &str) -> EnvInputs {
    EnvInputs {
        python: "cpython-3.11.7 x86_64-linux /opt/stackstorm/st2/bin/python".into(),
        settings: vec!["provided six==1.16.0".into()],
        requirements: vec!["clush-runner==1.2.*".into()],
        pins: vec![crate::model::Pin {
            name: "clush-runner".into(),
            version: version.into(),
            file: format!("clush_runner-{version}-py3-none-any.whl"),
            sha256: version.repeat(8),
        }],
    }
}

#[test]
fn the_runner_set_switches_only_when_its_inputs_change() {
    let mut desired = Desired {
        runners: Some(runner_set("1.2.0")),
        ..Desired::default()
    };
    let mut current = installed(&[]);
    let first = plan(&desired, &current, Prune::Off)
        .unwrap()
        .runners
        .unwrap();
    assert_eq!(first.from, None);
    assert_eq!(
        first.reasons,
        [Reason::RequirementAdded("clush-runner==1.2.*".into())]
    );

    current.runners = Some(runner_set("1.2.0"));
    let same = plan(&desired, &current, Prune::Off).unwrap();
    assert_eq!(same.runners, None);
    assert!(!same.has_changes());

    desired.runners = Some(runner_set("1.2.1"));
    let newer = plan(&desired, &current, Prune::Off)
        .unwrap()
        .runners
        .unwrap();
    assert_eq!(newer.from, Some(runner_set("1.2.0").digest()));
    assert_eq!(
        newer.reasons,
        [Reason::PinChanged {
            name: "clush-runner".into(),
            from: "1.2.0".into(),
            to: "1.2.1".into(),
            origin: None,
        }]
    );

    // Live but no longer loaded by StackStorm: the same set again.
    current.runners = Some(runner_set("1.2.1"));
    current.runners_unhooked = true;
    let repair = plan(&desired, &current, Prune::Off)
        .unwrap()
        .runners
        .unwrap();
    assert_eq!(repair.from, Some(runner_set("1.2.1").digest()));
    assert_eq!(repair.reasons, [Reason::RunnerHookMissing]);

    // Runners that left the site config stay as they are.
    desired.runners = None;
    assert_eq!(plan(&desired, &current, Prune::Off).unwrap().runners, None);
}

#[test]
fn a_suspended_pack_holds_its_change_and_says_why() {
    let a = want("a", "1.1.0", "t2", inputs(&[], &[]), "c");
    let old = want("a", "1.0.0", "t1", inputs(&[], &[]), "c");
    let gone = want("gone", "1.0.0", "t", inputs(&[], &[]), "c");
    let current = installed(&[have(&old), have(&gone)]);
    let desired = Desired {
        packs: vec![a],
        suspended: BTreeMap::from([
            (name("a"), "maintenance".to_string()),
            (name("gone"), "keep it".to_string()),
        ]),
        ..Desired::default()
    };
    let plan = plan(&desired, &current, Prune::On).unwrap();
    assert!(!plan.has_changes());
    assert_eq!(plan.changes[0].action, Action::Unchanged);
    assert_eq!(plan.changes[0].to, plan.changes[0].from);
    assert_eq!(
        plan.changes[0].reasons,
        [Reason::Suspended {
            reason: "maintenance".into(),
            held: Action::Upgrade
        }]
    );
    assert_eq!(
        plan.changes[1].reasons[0].to_string(),
        "suspended (keep it): the remove waits for `packsync resume`"
    );
}

#[test]
fn broken_links_to_an_unchanged_release_are_repaired_and_a_change_repairs_them_anyway() {
    let clush = want("clush", "1.0.0", "t1", inputs(&[], &[]), "c");
    let broken = InstalledPack {
        broken_links: vec![PathBuf::from("/opt/stackstorm/packs/clush")],
        ..have(&clush)
    };
    assert_eq!(
        plan_of(
            &desired(vec![clush.clone()]),
            &installed(std::slice::from_ref(&broken))
        ),
        ["clush repair: no longer linked to the live release: `/opt/stackstorm/packs/clush`"]
    );
    // An upgrade switches and links anyway: no repair of its own.
    let newer = want("clush", "1.1.0", "t2", inputs(&[], &[]), "c");
    assert_eq!(
        plan_of(&desired(vec![newer]), &installed(&[broken])),
        ["clush upgrade: version 1.0.0 -> 1.1.0"]
    );
}

/// Issue 14: a live release whose virtualenv has no completion record is rebuilt.
#[test]
fn a_broken_env_under_an_unchanged_release_is_rebuilt() {
    let clush = want("clush", "1.0.0", "t1", inputs(&[], &[]), "c");
    let broken = InstalledPack {
        broken_env: Some(PathBuf::from("/state/envs/0123")),
        ..have(&clush)
    };
    assert_eq!(
        plan_of(&desired(vec![clush]), &installed(&[broken])),
        ["clush rebuild: its virtualenv `/state/envs/0123` is incomplete (broken): built again"]
    );
}

/// Issue 14: a failed build of the same inputs waits for its retry time; a removal does not.
#[test]
fn a_failed_build_holds_its_change_until_the_retry_time() {
    let clush = want("clush", "1.0.0", "t1", inputs(&[], &[]), "c");
    let failed = FailedBuild {
        failures: 2,
        failed_at: "2026-12-07T10:00:00Z".parse().unwrap(),
        retry_after: "2026-12-07T10:10:00Z".parse().unwrap(),
        cause: "lxml: error: command 'gcc' failed".into(),
    };
    let mut d = desired(vec![clush]);
    d.failed_builds
        .insert(PackName::new("clush").unwrap(), failed);
    assert_eq!(
        plan_of(&d, &installed(&[])),
        [
            "clush unchanged: failed build, retry after 2026-12-07 10:10:00 UTC (2 failures): \
             the install waits; lxml: error: command 'gcc' failed"
        ]
    );
}
