//! Issue 18: three hosts of one StackStorm site as one fleet. Each host is its own `packsync`
//! process with its own `state_dir`, `packs_dir` and `virtualenvs_dir` (as on separate nodes);
//! they share one MongoDB database and one fake StackStorm, whose `register` and `restart`
//! commands log which host ran them.

#![allow(clippy::unwrap_used, reason = "test helpers panic on failure")]

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::agent::Agent;
use crate::common::git::GitRepo;
use crate::common::mongo;
use crate::common::site::{PackEntry, TestSite, assert_exit, pack_yaml, run_json};

const HOSTS: [&str; 3] = ["st2-1", "st2-2", "st2-3"];

/// Three fleet hosts deploying the pack `clush` from one repo.
struct Fleet {
    hosts: Vec<TestSite>,
    repo: GitRepo,
    /// Where the fake StackStorm logs, shared by the hosts.
    shared: TempDir,
}

impl Fleet {
    /// `fleet` holds the keys of `[fleet]` besides `name` and `hosts`.
    fn new(fleet: &str) -> Self {
        let shared = TempDir::new().unwrap();
        let database = mongo::unique_database();
        let url = mongo::url();
        let mut hosts: Vec<TestSite> = HOSTS.iter().map(|_| TestSite::new()).collect();
        let repo = hosts[0].pack_repo("clush", "1.0.0");
        let log = shared.path().join("stackstorm.log");
        for (site, host) in hosts.iter_mut().zip(HOSTS) {
            let register = site.engine_script(
                "register",
                &format!(
                    "echo \"register {host} $(grep '^version' \"$2/pack.yaml\")\" >> '{}'\n",
                    log.display()
                ),
            );
            let restart = site.engine_script(
                "restart",
                &format!("echo \"restart {host}\" >> '{}'\n", log.display()),
            );
            site.add_pack(PackEntry::new("clush", repo.path()))
                .agent_line(&format!("host = \"{host}\""))
                .mongodb(&url, &database)
                .stackstorm_line(&format!(
                    "register = ['{}', '{{pack}}', '{{pack_dir}}']",
                    register.display()
                ))
                .stackstorm_line(&format!("restart = ['{}']", restart.display()))
                // A rollout that never registers fails in seconds, not the default 10 min.
                .stackstorm_line("command_timeout = \"10s\"")
                .section(&format!(
                    "[fleet]\nname = \"site\"\nhosts = [\"st2-1\", \"st2-2\", \"st2-3\"]\n{fleet}\n"
                ));
        }
        Self {
            hosts,
            repo,
            shared,
        }
    }

    /// Makes `[stackstorm] <hook>` on every host log `<hook> <host> version: <version>` and
    /// fail for the version `failing`.
    fn hook_failing_on(&mut self, hook: &str, failing: &str) {
        let log = self.shared.path().join("stackstorm.log");
        for (site, host) in self.hosts.iter_mut().zip(HOSTS) {
            let script = site.engine_script(
                hook,
                &format!(
                    "version=$(grep '^version' \"$1/pack.yaml\")\n\
                     echo \"{hook} {host} $version\" >> '{log}'\n\
                     [ \"$version\" != 'version: {failing}' ]\n",
                    log = log.display(),
                ),
            );
            site.stackstorm_line(&format!(
                "{hook} = ['{}', '{{pack_dir}}']",
                script.display()
            ));
        }
    }

    /// What the fake StackStorm logged, one line per command run.
    fn log(&self) -> Vec<String> {
        fs_err::read_to_string(self.shared.path().join("stackstorm.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// Starts `apply` on the hosts numbered `which` (0-based) at once.
    fn start(&self, which: &[usize]) -> Vec<Child> {
        which
            .iter()
            .map(|&i| {
                let mut command = self.hosts[i].cmd(["apply", "--detailed-exitcodes"]);
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
                command.spawn().unwrap()
            })
            .collect()
    }

    /// Runs `apply` on the hosts `which` at once: each one's exit code and output.
    fn apply(&self, which: &[usize]) -> Vec<(Option<i32>, String)> {
        self.start(which).into_iter().map(finish).collect()
    }

    /// The version live on host `i`, if any.
    fn live(&self, i: usize) -> Option<String> {
        let text =
            fs_err::read_to_string(self.hosts[i].packs_dir().join("clush/pack.yaml")).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("version: "))
            .map(str::to_string)
    }

    /// Asserts that `version` is live on every host.
    fn assert_live_everywhere(&self, version: &str) {
        for (i, host) in HOSTS.iter().enumerate() {
            assert_eq!(self.live(i).as_deref(), Some(version), "{host}");
        }
    }

    /// Commits version `version` of the pack.
    fn release(&self, version: &str) {
        self.repo
            .write("pack.yaml", pack_yaml("clush", version, ""));
        self.repo.commit(&format!("clush {version}"));
    }
}

fn finish(child: Child) -> (Option<i32>, String) {
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn assert_all_exit(results: &[(Option<i32>, String)], code: i32) {
    for (exit, output) in results {
        assert_eq!(*exit, Some(code), "{output}");
    }
}

/// Waits until `done` (a line in the log, a file), at most a minute.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_mins(1),
            "waited a minute for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn issue_18_a_commit_goes_live_on_every_host_registered_once_and_restarted_on_each() {
    let fleet = Fleet::new("prepare_timeout = \"1m\"");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    assert_eq!(fleet.count("register "), 1, "{:?}", fleet.log());
    for host in HOSTS {
        assert_eq!(
            fleet.count(&format!("restart {host}")),
            1,
            "{:?}",
            fleet.log()
        );
    }
    fleet.assert_live_everywhere("1.0.0");

    // The next commit: registered once more, with the new version, after every host switched.
    fleet.release("1.1.0");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    let registered: Vec<String> = fleet
        .log()
        .into_iter()
        .filter(|line| line.starts_with("register "))
        .collect();
    assert_eq!(registered.len(), 2, "{registered:?}");
    assert!(registered[1].ends_with("version: 1.1.0"), "{registered:?}");
    fleet.assert_live_everywhere("1.1.0");
    // Nothing left to do anywhere.
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 0);

    let status = run_json(fleet.hosts[1].cmd(["--json", "status", "--fleet"]));
    let report = &status["fleet"];
    assert_eq!(report["name"], "site");
    let on_hosts = &report["packs"][0]["hosts"];
    let release = on_hosts["st2-1"].as_str().unwrap();
    assert!(release.starts_with("1.1.0-"), "{status}");
    assert_eq!(on_hosts["st2-2"], release);
    assert_eq!(on_hosts["st2-3"], release);
    let rollouts = report["rollouts"].as_array().unwrap();
    assert_eq!(rollouts.len(), 2, "{status}");
    let latest = &rollouts[0];
    assert_eq!(latest["release"], release);
    assert_eq!(latest["phase"], "live");
    assert_eq!(latest["participants"].as_array().unwrap().len(), 3);
    assert_eq!(latest["switched"].as_object().unwrap().len(), 3);
    assert_eq!(latest["restarted"].as_object().unwrap().len(), 3);
    assert!(latest["window_ms"].as_i64().is_some(), "{latest}");

    let history = run_json(fleet.hosts[2].cmd(["--json", "history", "--fleet"]));
    assert_eq!(history["rollouts"], report["rollouts"]);
    let text = assert_exit(
        fleet.hosts[2].cmd(["history", "--fleet", "--limit", "1"]),
        0,
    );
    for host in HOSTS {
        assert!(
            text.contains(&format!("    {host}: prepared ")) && text.contains("restarted "),
            "{text}"
        );
    }
    let text = assert_exit(fleet.hosts[0].cmd(["status", "--fleet"]), 0);
    let short = &release[..release.len().min(24)];
    assert!(
        text.contains(&format!("clush  {short}  {short}  {short}")),
        "{text}"
    );
    assert!(
        text.contains(": live (attempt 1), prepared 3/3, switched 3/3"),
        "{text}"
    );
}

#[test]
fn issue_18_one_host_failing_its_gate_switches_no_host() {
    let mut fleet = Fleet::new("prepare_timeout = \"1m\"");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    fleet.hosts[2].stackstorm_line("test = ['false']");
    fleet.release("1.1.0");
    let results = fleet.apply(&[0, 1, 2]);
    for (exit, output) in &results {
        assert_eq!(*exit, Some(4), "{output}");
    }
    assert!(
        results[0]
            .1
            .contains("stopped before the switch: `st2-3` failed to build or gate it"),
        "{}",
        results[0].1
    );
    fleet.assert_live_everywhere("1.0.0");
    assert_eq!(fleet.count("register "), 1, "{:?}", fleet.log());
}

#[test]
fn issue_18_a_host_killed_while_preparing_is_waited_for_then_left_behind_and_catches_up() {
    let mut fleet = Fleet::new("prepare_timeout = \"3s\"\nquorum = 2");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    let gate = fleet.hosts[2].engine_script(
        "gate",
        &format!(
            "echo \"gate st2-3\" >> '{}'\nsleep 60\n",
            fleet.shared.path().join("stackstorm.log").display()
        ),
    );
    fleet.hosts[2].stackstorm_line(&format!("test = ['{}']", gate.display()));
    fleet.release("1.1.0");

    let started = Instant::now();
    let mut children = fleet.start(&[0, 1, 2]);
    let mut third = children.pop().unwrap();
    wait_for("st2-3's gate", || fleet.count("gate st2-3") == 1);
    third.kill().unwrap();
    third.wait().unwrap();
    let results: Vec<_> = children.into_iter().map(finish).collect();
    assert_all_exit(&results, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the others waited for st2-3 up to prepare_timeout"
    );
    assert_eq!(fleet.live(0).as_deref(), Some("1.1.0"));
    assert_eq!(fleet.live(1).as_deref(), Some("1.1.0"));
    assert_eq!(fleet.live(2).as_deref(), Some("1.0.0"), "st2-3 is behind");
    let status = run_json(fleet.hosts[0].cmd(["--json", "status", "--fleet"]));
    let on_hosts = &status["fleet"]["packs"][0]["hosts"];
    assert_ne!(on_hosts["st2-3"], on_hosts["st2-1"], "{status}");

    // On its return it catches up: switched and restarted, not registered again.
    fleet.hosts[2].remove_stackstorm_line("test");
    assert_all_exit(&fleet.apply(&[2]), 2);
    assert_eq!(fleet.live(2).as_deref(), Some("1.1.0"));
    assert_eq!(fleet.count("register "), 2, "{:?}", fleet.log());
    assert_eq!(fleet.count("restart st2-3"), 2, "{:?}", fleet.log());
}

#[test]
fn issue_18_without_a_quorum_a_host_down_holds_the_change_everywhere() {
    let fleet = Fleet::new("prepare_timeout = \"2s\"");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    fleet.release("1.1.0");
    // st2-3 is down: the others wait, then hold.
    let results = fleet.apply(&[0, 1]);
    for (exit, output) in &results {
        assert_eq!(*exit, Some(4), "{output}");
        assert!(
            output.contains("held: 2 of the 3 hosts needed had it built within 2s (not: st2-3)"),
            "{output}"
        );
    }
    fleet.assert_live_everywhere("1.0.0");
    // Once it is back, the three go together.
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    fleet.assert_live_everywhere("1.1.0");
    assert_eq!(fleet.count("register "), 2, "{:?}", fleet.log());
}

#[test]
fn issue_18_the_lease_holder_killed_after_the_go_is_replaced_and_registration_happens_once() {
    let mut fleet = Fleet::new("prepare_timeout = \"1m\"\nlease_ttl = \"1s\"");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    // The first host to register dies (SIGKILL) as its registration starts, before StackStorm
    // saw anything.
    let log = fleet.shared.path().join("stackstorm.log");
    let marker = fleet.shared.path().join("killed");
    for (site, host) in fleet.hosts.iter_mut().zip(HOSTS) {
        let register = site.engine_script(
            "register",
            &format!(
                "if [ ! -e '{marker}' ]; then touch '{marker}'; echo \"killed {host}\" >> '{log}'; \
                 kill -9 $PPID; sleep 5; exit 1; fi\n\
                 echo \"register {host} $(grep '^version' \"$2/pack.yaml\")\" >> '{log}'\n",
                marker = marker.display(),
                log = log.display(),
            ),
        );
        site.stackstorm_line(&format!(
            "register = ['{}', '{{pack}}', '{{pack_dir}}']",
            register.display()
        ));
    }
    fleet.release("1.1.0");
    let results = fleet.apply(&[0, 1, 2]);
    let killed: Vec<&str> = fleet
        .log()
        .iter()
        .filter_map(|line| line.strip_prefix("killed "))
        .map(|host| HOSTS.iter().copied().find(|h| *h == host).unwrap())
        .collect();
    assert_eq!(killed.len(), 1, "{:?}", fleet.log());
    let killed = HOSTS.iter().position(|h| *h == killed[0]).unwrap();
    for (i, (exit, output)) in results.iter().enumerate() {
        if i == killed {
            assert_eq!(*exit, None, "killed: {output}");
        } else {
            assert_eq!(*exit, Some(2), "{output}");
        }
    }
    let registered: Vec<String> = fleet
        .log()
        .into_iter()
        .filter(|line| line.starts_with("register ") && line.ends_with("1.1.0"))
        .collect();
    assert_eq!(registered.len(), 1, "{:?}", fleet.log());
    fleet.assert_live_everywhere("1.1.0");
    // The killed host comes back to a fleet where the release is live and registered: it
    // records what disk says, and registers nothing.
    assert_exit(
        fleet.hosts[killed].cmd(["apply", "--detailed-exitcodes"]),
        2,
    );
    assert_exit(
        fleet.hosts[killed].cmd(["apply", "--detailed-exitcodes"]),
        0,
    );
    let registered = fleet
        .log()
        .into_iter()
        .filter(|line| line.starts_with("register ") && line.ends_with("1.1.0"))
        .count();
    assert_eq!(registered, 1, "{:?}", fleet.log());
}

#[test]
fn issue_18_a_failed_registration_switches_every_host_back() {
    let mut fleet = Fleet::new("prepare_timeout = \"1m\"");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    fleet.hook_failing_on("register", "1.1.0");
    fleet.release("1.1.0");
    let results = fleet.apply(&[0, 1, 2]);
    for (exit, output) in &results {
        assert_eq!(*exit, Some(4), "{output}");
        assert!(output.contains("is live again"), "{output}");
    }
    fleet.assert_live_everywhere("1.0.0");
    let registered: Vec<String> = fleet
        .log()
        .into_iter()
        .filter(|line| line.starts_with("register "))
        .collect();
    // The install, the failed registration, and the release gone back to registered again by
    // the same host.
    assert_eq!(registered.len(), 3, "{registered:?}");
    assert!(registered[1].ends_with("1.1.0"), "{registered:?}");
    assert!(registered[2].ends_with("1.0.0"), "{registered:?}");
    assert_eq!(
        registered[1].split(' ').nth(1),
        registered[2].split(' ').nth(1),
        "{registered:?}"
    );
    let status = run_json(fleet.hosts[0].cmd(["--json", "status", "--fleet"]));
    assert_eq!(
        status["fleet"]["rollouts"][0]["phase"], "reverted",
        "{status}"
    );
}

#[test]
fn issue_18_waves_switch_a_canary_first_and_an_unhealthy_canary_halts_the_rest() {
    let mut fleet = Fleet::new("prepare_timeout = \"1m\"\nwaves = [[\"st2-1\"]]");
    fleet.hook_failing_on("health", "1.1.0");
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    let lines = fleet.log();
    let position = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();
    let canary_healthy = position("health st2-1");
    assert!(canary_healthy < position("restart st2-2"), "{lines:?}");
    assert!(canary_healthy < position("restart st2-3"), "{lines:?}");
    assert!(position("register ") < canary_healthy, "{lines:?}");

    // 1.1.0 is unhealthy on the canary: the others never switch to it.
    fleet.release("1.1.0");
    let results = fleet.apply(&[0, 1, 2]);
    assert_eq!(results[0].0, Some(6), "{}", results[0].1);
    for (exit, output) in &results[1..] {
        assert_eq!(*exit, Some(4), "{output}");
        assert!(
            output.contains("halted after wave 1: `st2-1` found the release unhealthy"),
            "{output}"
        );
    }
    assert_eq!(fleet.live(0).as_deref(), Some("1.1.0"));
    assert_eq!(fleet.live(1).as_deref(), Some("1.0.0"));
    assert_eq!(fleet.live(2).as_deref(), Some("1.0.0"));
    assert_eq!(fleet.count("health st2-2 version: 1.1.0"), 0);
}

#[test]
fn issue_18_a_database_restarted_mid_rollout_is_waited_for() {
    let mut server = mongo::Server::start(&[]);
    let mut fleet = Fleet::new("prepare_timeout = \"1m\"");
    for site in &mut fleet.hosts {
        site.mongodb(&server.url(), "st2");
    }
    assert_all_exit(&fleet.apply(&[0, 1, 2]), 2);
    // st2-3 gates slowly: the others have gated and are waiting for it (or are about to say
    // they are prepared) when the database goes away.
    let marker = fleet.shared.path().join("go-on");
    let log = fleet.shared.path().join("stackstorm.log");
    for (index, host) in HOSTS.iter().enumerate() {
        let wait = if index == 2 {
            format!(
                "while [ ! -e '{}' ]; do sleep 0.05; done\n",
                marker.display()
            )
        } else {
            String::new()
        };
        let gate = fleet.hosts[index].engine_script(
            "gate",
            &format!("echo \"gate {host}\" >> '{}'\n{wait}", log.display()),
        );
        fleet.hosts[index].stackstorm_line(&format!("test = ['{}']", gate.display()));
    }
    fleet.release("1.1.0");
    let children = fleet.start(&[0, 1, 2]);
    wait_for("every host's gate", || fleet.count("gate ") == 3);
    server.kill();
    // Down for longer than `[state] timeout` (3 s): each host's reads fail meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    server.restart();
    fs_err::write(&marker, "").unwrap();
    let results: Vec<_> = children.into_iter().map(finish).collect();
    assert_all_exit(&results, 2);
    fleet.assert_live_everywhere("1.1.0");
    assert_eq!(fleet.count("register "), 2, "{:?}", fleet.log());
}

/// Three agents (`packsync run`), as a site runs them: a commit is seen by each, and the three
/// converge on it together.
#[test]
fn issue_18_three_agents_deploy_each_commit_together() {
    let fleet = Fleet::new("prepare_timeout = \"1m\"");
    let agents: Vec<Agent> = fleet.hosts.iter().map(Agent::start).collect();
    for (i, agent) in agents.iter().enumerate() {
        agent.wait_for("the first rollout", || {
            fleet.live(i).as_deref() == Some("1.0.0")
        });
    }
    fleet.release("1.1.0");
    for (i, agent) in agents.iter().enumerate() {
        agent.wait_for("clush 1.1.0 live", || {
            fleet.live(i).as_deref() == Some("1.1.0")
        });
    }
    agents[0].wait_for("the registration of 1.1.0 and every restart", || {
        fleet.count("restart ") == 6
    });
    let registered: Vec<String> = fleet
        .log()
        .into_iter()
        .filter(|line| line.starts_with("register "))
        .collect();
    assert_eq!(registered.len(), 2, "{registered:?}");
    assert!(registered[1].ends_with("1.1.0"), "{registered:?}");
}
