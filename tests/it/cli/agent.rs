//! `packsync run`: a real agent process, real commits, real signals.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::site::{PackEntry, TestSite, pack_yaml};

/// The agent of `site`, its log in `agent.log`; killed if a test fails before it stops.
pub(super) struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    pub(super) fn start(site: &TestSite) -> Self {
        Self::start_with(site, &[])
    }

    fn start_with(site: &TestSite, args: &[&str]) -> Self {
        Self::start_in(site, args, &[])
    }

    /// The agent with `args` and the environment variables `envs`.
    fn start_in(site: &TestSite, args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Self {
        let log = site.path().join("agent.log");
        let file = fs_err::File::create(&log).expect("the log file is created");
        let child = site
            .cmd(std::iter::once("run").chain(args.iter().copied()))
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(file.into_parts().0)
            .spawn()
            .expect("packsync run starts");
        Self { child, log }
    }

    pub(super) fn log(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (up to 30 s) until `ready` holds, with the log in the failure message.
    pub(super) fn wait_for(&self, what: &str, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; agent log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The version of the live release of `pack`, from its `release.json`.
pub(super) fn live_version(site: &TestSite, pack: &str) -> Option<String> {
    let release = fs_err::read_link(site.state_dir().join("current").join(pack)).ok()?;
    let release = site.state_dir().join("current").join(release);
    let json: serde_json::Value =
        serde_json::from_slice(&fs_err::read(release.join("release.json")).ok()?).ok()?;
    Some(json["revision"]["version"].as_str()?.to_owned())
}

fn last_run(state_dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&fs_err::read(state_dir.join("last_run.json")).ok()?).ok()
}

/// What a share the kernel cannot watch (NFS) gets: a commit to an existing branch rewrites
/// its ref in place, which only the file's time tells the poll watcher.
#[test]
fn a_polled_repo_deploys_each_commit() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .section("[watch]\nmode = \"poll\"\npoll = \"200ms\"\ndebounce = \"100ms\"\n");
    let agent = Agent::start(&site);
    agent.wait_for("the first reconcile", || {
        live_version(&site, "clush").as_deref() == Some("1.0.0")
    });
    agent.wait_for("the polling", || {
        agent.log().contains("polling for changes")
    });
    for version in ["1.1.0", "1.2.0"] {
        clush.write("pack.yaml", pack_yaml("clush", version, ""));
        clush.commit(&format!("clush {version}"));
        agent.wait_for(&format!("clush {version} live"), || {
            live_version(&site, "clush").as_deref() == Some(version)
        });
    }
    assert!(
        !agent.log().contains("watching for changes"),
        "{}",
        agent.log()
    );
    // Issue 20: a log file gets no colour codes, and fields are values.
    let log = agent.log();
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(log.contains("reconciling packs=clush"), "{log}");
}

#[test]
fn the_agent_deploys_each_commit_survives_a_bad_config_and_stops_on_sigterm() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    let slurm = site.pack_repo("slurm", "2.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .add_pack(PackEntry::new("slurm", slurm.path()))
        .section("[watch]\ndebounce = \"200ms\"\n");
    let agent = Agent::start(&site);

    // At start: a full reconcile.
    agent.wait_for("the first reconcile", || {
        live_version(&site, "clush").as_deref() == Some("1.0.0")
            && live_version(&site, "slurm").as_deref() == Some("2.0.0")
    });
    agent.wait_for("last_run.json", || {
        last_run(&site.state_dir()).is_some_and(|run| run["exit_code"] == 2)
    });

    // A commit: that pack only.
    clush.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    clush.commit("clush 1.1.0");
    agent.wait_for("clush 1.1.0 live", || {
        live_version(&site, "clush").as_deref() == Some("1.1.0")
    });
    agent.wait_for("the run after the commit", || {
        agent.log().matches("run finished").count() >= 2
    });
    let log = agent.log();
    let second = &log[log.find("clush 1.1.0").map_or(0, |_| 0)..];
    assert!(second.contains("reconciling packs=clush"), "{log}");

    // A broken config, then SIGHUP: logged, the old config kept, the agent still deploys.
    let good = fs_err::read_to_string(site.config_path()).unwrap();
    fs_err::write(site.config_path(), "this is = not [valid").unwrap();
    agent.signal("HUP");
    agent.wait_for("the invalid config to be reported", || {
        agent
            .log()
            .contains("the new site config is invalid; running on the previous one")
    });
    slurm.write("pack.yaml", pack_yaml("slurm", "2.1.0", ""));
    slurm.commit("slurm 2.1.0");
    agent.wait_for("slurm 2.1.0 live on the old config", || {
        live_version(&site, "slurm").as_deref() == Some("2.1.0")
    });
    fs_err::write(site.config_path(), good).unwrap();

    // SIGTERM: exit 0.
    let mut agent = agent;
    agent.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}\n{}", agent.log());
    assert!(agent.log().contains("agent stopped"), "{}", agent.log());
}

#[test]
fn sigterm_lets_the_step_in_progress_finish_and_leaves_the_rest() {
    let mut site = TestSite::new();
    let alpha = site.pack_repo("alpha", "1.0.0");
    let beta = site.pack_repo("beta", "1.0.0");
    let register = site.engine_script(
        "register",
        "echo \"start $PACKSYNC_PACK\" >> \"$LOG\"\nsleep 2\necho \"done $PACKSYNC_PACK\" >> \"$LOG\"",
    );
    site.add_pack(PackEntry::new("alpha", alpha.path()))
        .add_pack(PackEntry::new("beta", beta.path()))
        .agent_line("concurrency = 1")
        .stackstorm_line(&format!(
            "register = ['{}', '{{pack}}']",
            register.display()
        ));
    let mut agent = Agent::start(&site);
    agent.wait_for("the first registration to start", || {
        site.engine_log().contains("start alpha")
    });
    agent.signal("TERM");
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", agent.log());
    assert_eq!(
        site.engine_log(),
        "start alpha\ndone alpha\n",
        "alpha finished, beta not begun"
    );
    assert_eq!(live_version(&site, "alpha").as_deref(), Some("1.0.0"));
    assert_eq!(live_version(&site, "beta"), None);
    assert!(
        agent.log().contains("left for the next run"),
        "{}",
        agent.log()
    );

    // The next start picks up what was left.
    let agent = Agent::start(&site);
    agent.wait_for("beta live", || {
        live_version(&site, "beta").as_deref() == Some("1.0.0")
    });
}

#[test]
fn a_new_wheel_rebuilds_only_the_dependent_env_and_a_config_edit_is_picked_up() {
    let mut site = TestSite::new();
    site.wheel("fxdep", "1.0", &[]);
    let clush = site.pack_repo("clush", "1.0.0");
    clush.write("requirements.txt", "fxdep\n");
    clush.commit("clush needs fxdep");
    let slurm = site.pack_repo("slurm", "2.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .add_pack(PackEntry::new("slurm", slurm.path()))
        .section("[watch]\ndebounce = \"200ms\"\n");
    let agent = Agent::start(&site);
    let env_of = |pack: &str| fs_err::canonicalize(site.venvs_dir().join(pack)).ok();
    agent.wait_for("the first reconcile", || {
        env_of("clush").is_some() && env_of("slurm").is_some()
    });
    let (clush_env, slurm_env) = (env_of("clush"), env_of("slurm"));

    site.wheel("fxdep", "1.1", &[]);
    agent.wait_for("clush rebuilt", || env_of("clush") != clush_env);
    assert_eq!(env_of("slurm"), slurm_env, "slurm's env does not use fxdep");
    let python = site.venvs_dir().join("clush/bin/python");
    let version = Command::new(python)
        .args(["-c", "import fxdep; print(fxdep.__version__)"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "1.1");

    // The site config edited in place: read again, the new pack deployed.
    let diskless = site.pack_repo("diskless", "0.1.0");
    site.add_pack(PackEntry::new("diskless", diskless.path()));
    fs_err::write(site.config_path(), site.config_text()).unwrap();
    agent.wait_for("diskless live", || {
        live_version(&site, "diskless").as_deref() == Some("0.1.0")
    });
    assert!(
        agent.log().contains("site config re-read"),
        "{}",
        agent.log()
    );
}

#[test]
fn a_failed_pack_is_retried_with_backoff_not_in_a_loop() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    // Refuses the first two registrations.
    let register = site.engine_script(
        "register",
        "echo attempt >> \"$LOG\"\n[ \"$(grep -c attempt \"$LOG\")\" -gt 2 ]",
    );
    site.add_pack(PackEntry::new("clush", clush.path()))
        .stackstorm_line(&format!("register = ['{}']", register.display()))
        .section("[watch]\ndebounce = \"200ms\"\n[schedule]\nretry = \"300ms\"\n");
    let agent = Agent::start(&site);
    agent.wait_for("the third attempt to go through", || {
        live_version(&site, "clush").as_deref() == Some("1.0.0")
            && agent.log().matches("run finished").count() >= 3
    });
    let log = agent.log();
    assert!(log.contains("failed packs will be tried again"), "{log}");
    assert!(
        log.contains("attempts=2 delay=600ms"),
        "the wait doubles: {log}"
    );
    // Converged: no more runs after the success.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        agent.log().matches("run finished").count(),
        3,
        "{}",
        agent.log()
    );
    assert_eq!(site.engine_log().matches("attempt").count(), 3);
}

#[test]
fn json_logs_carry_the_run_span() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    let agent = Agent::start_with(&site, &["--log-format", "json"]);
    agent.wait_for("the first run", || agent.log().contains("run finished"));
    let lines: Vec<serde_json::Value> = agent
        .log()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
        .collect();
    let finished = lines
        .iter()
        .find(|line| line["fields"]["message"] == "run finished")
        .expect("a run finished line");
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["fields"]["exit_code"], 2);
    assert!(
        finished["span"]["run"]
            .as_str()
            .is_some_and(|run| run.ends_with("-1")),
        "{finished}"
    );
}

/// `GET path` on `address`: the status line and the body, or what went wrong.
pub(super) fn http_get(address: &str, path: &str) -> Result<(String, String), String> {
    use std::io::{Read as _, Write as _};
    let fail = |err: std::io::Error| format!("GET {path}: {err}");
    let mut stream = std::net::TcpStream::connect(address).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(fail)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no headers in {response:?}"))?;
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// A local address no one listens on (yet).
pub(super) fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free local port")
        .port();
    format!("127.0.0.1:{port}")
}

#[test]
fn metrics_and_healthz_are_served() {
    let address = free_address();
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .agent_line(&format!("metrics_listen = \"{address}\""));
    let agent = Agent::start(&site);
    agent.wait_for("the first run", || agent.log().contains("run finished"));
    agent.wait_for("/healthz to answer 200", || {
        http_get(&address, "/healthz").is_ok_and(|(status, _)| status == "HTTP/1.1 200 OK")
    });
    let (status, metrics) = http_get(&address, "/metrics").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    for line in [
        "packsync_runs_total{result=\"ok\"} 1",
        "packsync_changes_total{action=\"install\"} 1",
        "packsync_run_duration_seconds_count 1",
        "packsync_last_success_timestamp_seconds{pack=\"clush\"} ",
        "packsync_drifted_packs 0",
        "packsync_last_run_success 1",
        "packsync_last_run_timestamp_seconds ",
        &format!(
            "packsync_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        "packsync_pack_info{pack=\"clush\",version=\"1.0.0\",release=\"1.0.0-",
        "\",state=\"ok\"} 1",
        "# EOF",
    ] {
        assert!(metrics.contains(line), "{line:?} not in:\n{metrics}");
    }
    let (status, _) = http_get(&address, "/nothing").unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn the_schedule_reconciles_everything_again() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .section("[schedule]\ncron = \"*/2 * * * * *\"\nsplay = \"100ms\"\n");
    let agent = Agent::start(&site);
    agent.wait_for("two scheduled runs", || {
        agent.log().matches("scheduled reconcile").count() >= 2
    });
    // Drift no watch sees: the live release unlinked by hand is put back by the next
    // scheduled run.
    let link = site.state_dir().join("current/clush");
    fs_err::remove_file(&link).unwrap();
    agent.wait_for("the live link put back", || link.exists());
}

#[test]
fn a_push_to_a_bare_repo_is_seen() {
    let mut site = TestSite::new();
    let work = site.pack_repo("clush", "1.0.0");
    let bare = work.bare_clone(&site.path().join("clush.git"));
    site.add_pack(PackEntry::new("clush", &bare))
        .section("[watch]\ndebounce = \"200ms\"\n");
    let agent = Agent::start(&site);
    agent.wait_for("clush live", || {
        live_version(&site, "clush").as_deref() == Some("1.0.0")
    });
    work.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    work.commit("clush 1.1.0");
    let pushed = Command::new("git")
        .arg("-C")
        .arg(work.path())
        .arg("push")
        .arg("-q")
        .arg(&bare)
        .arg("HEAD:main")
        .status()
        .expect("git runs");
    assert!(pushed.success());
    agent.wait_for("clush 1.1.0 live", || {
        live_version(&site, "clush").as_deref() == Some("1.1.0")
    });
}

/// Issue 19: a commit is whole once its ref is renamed into place, so it goes live without
/// waiting for `[watch] debounce` (an hour here: waiting for it would time the test out);
/// commits that land while a run is in progress make one more run, not one each.
#[test]
fn issue_19_commits_during_a_run_make_one_more_run_and_the_debounce_is_not_waited_for() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    let marker = site.path().join("go-on");
    // The gate of 1.1.0 holds its run until the test lets it go.
    let gate = site.engine_script(
        "gate",
        &format!(
            "version=$(grep '^version' \"$1/pack.yaml\")\necho \"gate $version\" >> \"$LOG\"\n\
             if [ \"$version\" = 'version: 1.1.0' ]; then\n\
               while [ ! -e '{}' ]; do sleep 0.02; done\nfi\n",
            marker.display()
        ),
    );
    site.add_pack(PackEntry::new("clush", clush.path()))
        .stackstorm_line(&format!("test = ['{}', '{{release_dir}}']", gate.display()))
        .section("[watch]\ndebounce = \"1h\"\n");
    let agent = Agent::start(&site);
    agent.wait_for("the first reconcile", || {
        live_version(&site, "clush").as_deref() == Some("1.0.0")
    });
    agent.wait_for("the watches", || {
        agent.log().contains("watching for changes")
    });

    clush.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    clush.commit("clush 1.1.0");
    agent.wait_for("the gate of 1.1.0", || {
        site.engine_log().contains("gate version: 1.1.0")
    });
    for version in ["1.2.0", "1.3.0", "1.4.0"] {
        clush.write("pack.yaml", pack_yaml("clush", version, ""));
        clush.commit(&format!("clush {version}"));
    }
    fs_err::write(&marker, "").unwrap();
    agent.wait_for("clush 1.4.0 live", || {
        live_version(&site, "clush").as_deref() == Some("1.4.0")
    });
    // One more commit, to know that any run the burst made has finished.
    clush.write("pack.yaml", pack_yaml("clush", "1.5.0", ""));
    clush.commit("clush 1.5.0");
    agent.wait_for("clush 1.5.0 live", || {
        live_version(&site, "clush").as_deref() == Some("1.5.0")
    });
    agent.wait_for("the run of 1.5.0 to finish", || {
        agent.log().matches("run finished").count() >= 4
    });
    let log = agent.log();
    assert_eq!(
        log.matches("run finished").count(),
        4,
        "the start, 1.1.0, one for the burst, 1.5.0:\n{log}"
    );
    assert_eq!(
        site.engine_log(),
        "gate version: 1.0.0\ngate version: 1.1.0\ngate version: 1.4.0\ngate version: 1.5.0\n"
    );
}

/// Issue 21: under systemd (`Type=notify`, `WatchdogSec=`), the agent says it is ready once it
/// listens for its triggers, that it is alive at half the watchdog's period, and that it stops.
#[test]
fn issue_21_the_agent_speaks_systemds_notify_protocol() {
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()));
    let socket_path = site.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut agent = Agent::start_in(
        &site,
        &[],
        &[
            ("NOTIFY_SOCKET", socket_path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("200000")),
        ],
    );
    let receive = || {
        let mut buffer = [0; 256];
        let read = socket
            .recv(&mut buffer)
            .unwrap_or_else(|err| panic!("no notification: {err}\n{}", agent.log()));
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    };
    assert_eq!(receive(), "READY=1");
    assert_eq!(receive(), "WATCHDOG=1");
    assert_eq!(receive(), "WATCHDOG=1");
    agent.signal("TERM");
    let stopping = std::iter::repeat_with(receive)
        .take(100)
        .find(|state| state != "WATCHDOG=1");
    assert_eq!(stopping.as_deref(), Some("STOPPING=1"));
    assert!(agent.child.wait().unwrap().success());
}
