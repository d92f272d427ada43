//! The processes packsync starts to build virtualenvs, runner sets and runner wheels
//! (`python -m venv`, pip, uv and whatever they start). None may outlive packsync: an orphaned
//! pip that goes on writing into `envs/<digest>` after a later run took that folder over would
//! leave a virtualenv that is not what its completion record says.
//!
//! Each child runs in its own process group and is killed when packsync dies
//! (`PR_SET_PDEATHSIG`, set between fork and exec). The death signal reaches the child only,
//! not what it starts (a build backend, uv's workers), so each child is also recorded in
//! `state_dir/children/<pid>` while it runs, and a run that starts after a crash ends the whole
//! process group of every child the crashed run left ([`Children::end_leftovers`]) before it
//! touches `envs/`.

use std::io;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

/// `state_dir/children`: one file per running child.
const CHILDREN_DIR: &str = "children";
/// How long [`Children::end_leftovers`] waits for a killed process group to be gone.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Starts children tied to packsync's life and keeps their record under `state_dir`.
#[derive(Debug, Clone)]
pub struct Children {
    dir: PathBuf,
}

/// What `state_dir/children/<pid>` says: the child, and the packsync process that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChildRecord {
    /// The child's pid, which is also its process group id.
    pid: i32,
    /// The child's start time (clock ticks after boot, `/proc/<pid>/stat`): a pid reused by
    /// another process has another start time.
    started: u64,
    owner: i32,
    owner_started: u64,
    program: String,
}

/// A leftover process group that [`Children::end_leftovers`] killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub pid: i32,
    pub program: String,
}

impl Children {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(CHILDREN_DIR),
        }
    }

    /// `state_dir/children`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `command` to its end as [`Command::output`] does (stdin closed, stdout and stderr
    /// captured), in its own process group, killed if packsync dies, recorded while it runs.
    pub fn output(&self, command: &mut Command) -> io::Result<Output> {
        self.output_within(command, None).map(|(output, _)| output)
    }

    /// [`Self::output`], its process group killed after `timeout` (`None`: never); says whether
    /// it was.
    pub fn output_within(
        &self,
        command: &mut Command,
        timeout: Option<Duration>,
    ) -> io::Result<(Output, bool)> {
        let (child, record) = self.start(command)?;
        let (output, timed_out) = match timeout {
            Some(timeout) => wait_with_timeout(child, timeout),
            None => (child.wait_with_output(), false),
        };
        forget(record);
        output.map(|output| (output, timed_out))
    }

    /// [`Self::output`], each line the child writes (stdout or stderr) told to `on_line` as it
    /// comes: pip says what it installs on stdout, uv on stderr.
    pub fn output_lines(
        &self,
        command: &mut Command,
        on_line: &(dyn Fn(&str) + Sync),
    ) -> io::Result<Output> {
        let (mut child, record) = self.start(command)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let read = |stream: &mut dyn io::Read| -> io::Result<Vec<u8>> {
            let mut all = Vec::new();
            let mut reader = io::BufReader::new(stream);
            loop {
                let start = all.len();
                if io::BufRead::read_until(&mut reader, b'\n', &mut all)? == 0 {
                    return Ok(all);
                }
                let line = String::from_utf8_lossy(&all[start..]);
                let line = line.trim_end();
                if !line.is_empty() {
                    on_line(line);
                }
            }
        };
        let (stdout, stderr) = std::thread::scope(|scope| {
            let stderr = scope.spawn(|| read(&mut { stderr }));
            let stdout = read(&mut { stdout });
            let stderr = stderr
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")));
            (stdout, stderr)
        });
        let status = child.wait();
        forget(record);
        Ok(Output {
            status: status?,
            stdout: stdout?,
            stderr: stderr?,
        })
    }

    /// Starts `command` (stdin closed, stdout and stderr piped) in its own process group,
    /// tied to packsync's life, and records it.
    fn start(&self, command: &mut Command) -> io::Result<(Child, io::Result<PathBuf>)> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        die_with_parent(command);
        let child = command.spawn()?;
        let record = self.record(&child, command);
        if let Err(err) = &record {
            // Not fatal: the death signal still ends the child with packsync; only what the
            // child starts could outlive a crash.
            tracing::warn!(pid = child.id(), error = %err, "cannot record a child process");
        }
        Ok((child, record))
    }

    fn record(&self, child: &std::process::Child, command: &Command) -> io::Result<PathBuf> {
        let pid = i32::try_from(child.id()).map_err(io::Error::other)?;
        let owner = i32::try_from(std::process::id()).map_err(io::Error::other)?;
        let record = ChildRecord {
            pid,
            // A child that already exited has no start time left to read: nothing to record.
            started: start_time(pid).ok_or_else(|| io::Error::other("the child is gone"))?,
            owner,
            owner_started: start_time(owner).ok_or_else(|| io::Error::other("no /proc"))?,
            program: command.get_program().to_string_lossy().into_owned(),
        };
        fs_err::create_dir_all(&self.dir)?;
        let path = self.dir.join(pid.to_string());
        let json = serde_json::to_vec(&record).expect("a child record serialises");
        crate::fsx::write_atomic(&path, &json)?;
        Ok(path)
    }

    /// Ends the process group of every recorded child whose packsync is gone (a crash or
    /// `kill -9`), waits until its processes are gone, and forgets the records. Call under the
    /// run lock, before anything in `envs/` is touched.
    pub fn end_leftovers(&self) -> io::Result<Vec<Ended>> {
        let entries = match fs_err::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let mut ended = Vec::new();
        for entry in entries {
            let path = entry?.path();
            let record: Option<ChildRecord> = fs_err::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let Some(record) = record else {
                // Torn by a crash while it was written: its child got the death signal.
                crate::fsx::remove_if_exists(&path)?;
                continue;
            };
            if start_time(record.owner) == Some(record.owner_started) {
                continue; // Its packsync still runs (a `plan` building a runner wheel).
            }
            // A pid is never reused while a process group of that id has members, so a
            // leader with another start time means the group is gone.
            let reused = start_time(record.pid).is_some_and(|started| started != record.started);
            if !reused && kill_group(record.pid) {
                tracing::warn!(pid = record.pid, program = %record.program, "ended a process an interrupted run left");
                ended.push(Ended {
                    pid: record.pid,
                    program: record.program.clone(),
                });
            }
            crate::fsx::remove_if_exists(&path)?;
        }
        Ok(ended)
    }
}

/// Removes the record of a child that ended.
fn forget(record: io::Result<PathBuf>) {
    if let Ok(path) = record {
        let _ = crate::fsx::remove_if_exists(&path);
    }
}

/// Waits for `child` (the leader of its own process group) and its output; after `timeout`,
/// kills its process group first. Returns whether it was killed.
pub fn wait_with_timeout(child: Child, timeout: Duration) -> (io::Result<Output>, bool) {
    let group = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
    let (finished, done) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = finished.send(());
        output
    });
    let timed_out = matches!(done.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
    if timed_out && let Some(group) = group {
        // Already gone between the timeout and now: nothing to kill.
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
    }
    let output = waiter
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the waiting thread panicked")));
    (output, timed_out)
}

/// Kills the process group `pgid` and waits (bounded) until none of its processes runs;
/// `false` when it had no process.
fn kill_group(pgid: i32) -> bool {
    let Some(group) = Pid::from_raw(pgid) else {
        return false;
    };
    if rustix::process::kill_process_group(group, Signal::KILL).is_err() {
        return false;
    }
    let deadline = Instant::now() + KILL_WAIT;
    while group_running(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Whether a process of group `pgid` still runs (a zombie no longer does anything).
fn group_running(pgid: i32) -> bool {
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let stat = entry
            .file_name()
            .to_str()
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|pid| fs_err::read_to_string(format!("/proc/{pid}/stat")).ok());
        stat.as_deref().and_then(stat_fields).is_some_and(|fields| {
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
    })
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and
/// parentheses): state first, then ppid, pgrp, ...
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().collect())
}

/// The start time of process `pid` in clock ticks after boot; `None` when it does not exist.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 of stat(5); the fields after the name start at field 3.
    stat_fields(&stat)?.get(19)?.parse().ok()
}

/// Asks the kernel to SIGKILL the child when the thread that starts it ends: packsync exiting
/// or killed. A child forked after packsync died (its parent is then another process) exits
/// at once instead of running unwatched.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec and calls only `prctl` and
    // `getppid`, both async-signal-safe system calls; it allocates nothing (the error is a
    // constant kind).
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_name_with_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        let fields = stat_fields(stat).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(fields[2], "42");
        assert_eq!(fields[19], "12345");
    }

    #[test]
    fn a_child_runs_in_its_own_group_and_its_record_goes_with_it() {
        let state = tempfile::tempdir().unwrap();
        let children = Children::new(state.path());
        let output = children
            .output(Command::new("sh").args([
                "-c",
                "cut -d' ' -f5 /proc/$$/stat; \
                 for _ in $(seq 500); do [ -e \"$0/$$\" ] && break; sleep 0.01; done; ls \"$0\"",
                &state.path().join(CHILDREN_DIR).display().to_string(),
            ]))
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut lines = stdout.lines();
        let pgid: u32 = lines.next().unwrap().trim().parse().unwrap();
        assert_ne!(pgid, std::process::id(), "not packsync's group");
        assert_eq!(
            lines.next(),
            Some(pgid.to_string().as_str()),
            "recorded while it runs"
        );
        assert_eq!(
            fs_err::read_dir(state.path().join(CHILDREN_DIR))
                .unwrap()
                .count(),
            0,
            "forgotten when it ends"
        );
    }

    #[test]
    fn leftovers_of_a_dead_packsync_are_ended_and_a_live_ones_kept() {
        let state = tempfile::tempdir().unwrap();
        let children = Children::new(state.path());
        fs_err::create_dir_all(&children.dir).unwrap();
        // A group leader and its own child, as pip and a build backend; its packsync is gone.
        let mut leftover = Command::new("sh")
            .args(["-c", "sleep 300 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = i32::try_from(leftover.id()).unwrap();
        let started = start_time(pid).unwrap();
        let dead_owner = ChildRecord {
            pid,
            started,
            owner: i32::MAX - 1,
            owner_started: 1,
            program: "pip".into(),
        };
        fs_err::write(
            children.dir.join(pid.to_string()),
            serde_json::to_vec(&dead_owner).unwrap(),
        )
        .unwrap();
        // A child of a packsync that still runs (this test) stays.
        let me = i32::try_from(std::process::id()).unwrap();
        let mut running = Command::new("sleep").arg("300").spawn().unwrap();
        let running_pid = i32::try_from(running.id()).unwrap();
        let live_owner = ChildRecord {
            pid: running_pid,
            started: start_time(running_pid).unwrap(),
            owner: me,
            owner_started: start_time(me).unwrap(),
            program: "uv".into(),
        };
        fs_err::write(
            children.dir.join(running_pid.to_string()),
            serde_json::to_vec(&live_owner).unwrap(),
        )
        .unwrap();
        // A record torn by a crash.
        fs_err::write(children.dir.join("7"), "{").unwrap();

        let ended = children.end_leftovers().unwrap();
        assert_eq!(
            ended,
            [Ended {
                pid,
                program: "pip".into()
            }]
        );
        leftover.wait().unwrap();
        assert!(!group_running(pid), "the whole group is gone");
        assert!(!children.dir.join(pid.to_string()).exists());
        assert!(!children.dir.join("7").exists());
        assert!(children.dir.join(running_pid.to_string()).exists());
        assert!(running.try_wait().unwrap().is_none(), "still running");
        running.kill().unwrap();
        running.wait().unwrap();
    }
}
