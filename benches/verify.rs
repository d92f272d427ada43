//! `cargo bench --bench verify`: what proving a virtualenv holds exactly its pins costs (issue
//! 14), on the 37-distribution set of a realistic pack (`kubernetes paramiko ClusterShell
//! pymongo` and StackStorm's `six`), from a wheel mirror made with `pip download` once (cached
//! in `target/bench-verify/mirror`; PyPI is reached only to fill it).
//!
//! Prints, per installer (pip, then uv with `PACKSYNC_TEST_UV` set), interleaved over the runs:
//! - the whole build of the env by `EnvBuilder::ensure` (venv, install, verification, seal);
//! - the verification alone on that env (every `RECORD` hash checked), and its share of the
//!   build (target: at most 5%);
//! - what a no-op `apply` reads instead: the completion record (target: at most 1 ms a pack).
//!
//! `PACKSYNC_BENCH_DIR` puts the envs on another disk (a loop-mounted ext4 in RAM is steadier
//! than the root disk); `PACKSYNC_BENCH_RUNS` sets the runs (default 3).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use packsync::config::Installer;
use packsync::env::EnvBuilder;
use packsync::model::{EnvInputs, Pin};

/// Per installer: its name, the builds, the verifications, the completion record reads.
type Figures = (&'static str, Vec<Duration>, Vec<Duration>, Vec<Duration>);

const REQUIREMENTS: [&str; 5] = ["kubernetes", "paramiko", "ClusterShell", "pymongo", "six"];

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = interpreter();
    let mirror = mirror(repo, &python);
    let pins = pins(&mirror);
    println!(
        "env: {} distributions from {}",
        pins.len(),
        mirror.display()
    );
    let inputs = EnvInputs {
        python: "bench".into(),
        settings: Vec::new(),
        requirements: REQUIREMENTS.iter().map(ToString::to_string).collect(),
        pins,
    };
    let runs: usize = std::env::var("PACKSYNC_BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(3);
    let work = match std::env::var_os("PACKSYNC_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let mut installers = vec![("pip", Installer::Pip)];
    if let Some(uv) = std::env::var_os("PACKSYNC_TEST_UV") {
        installers.push(("uv", Installer::Uv(PathBuf::from(uv))));
    }
    let mut figures: Vec<Figures> = installers
        .iter()
        .map(|(name, _)| (*name, Vec::new(), Vec::new(), Vec::new()))
        .collect();
    for run in 0..runs {
        // Interleaved: each run builds with every installer in turn.
        for ((name, installer), figure) in installers.iter().zip(&mut figures) {
            let state = work.path().join(format!("{name}-{run}"));
            let builder =
                EnvBuilder::new(python.clone(), mirror.clone(), installer.clone(), &state);
            let env = state.join("envs/bench");
            let started = Instant::now();
            builder.ensure(&env, &inputs, &|_| {}).unwrap();
            figure.1.push(started.elapsed());
            let site_packages = site_packages(&env);
            let started = Instant::now();
            let verified =
                packsync::env::verify_installed(&site_packages, &env, &inputs.pins).unwrap();
            figure.2.push(started.elapsed());
            assert_eq!(verified.len(), inputs.pins.len());
            let digest = inputs.digest();
            let started = Instant::now();
            for _ in 0..1000 {
                assert!(packsync::store::is_complete(&env, &digest));
            }
            figure.3.push(started.elapsed() / 1000);
            packsync::fsx::remove_tree(&state).unwrap();
        }
    }
    println!(
        "{:<5} {:>12} {:>14} {:>8} {:>20}",
        "", "build", "verification", "share", "completion record"
    );
    for (name, builds, verifications, records) in &mut figures {
        let (build, verification, record) =
            (median(builds), median(verifications), median(records));
        println!(
            "{name:<5} {:>12.2?} {:>14.1?} {:>7.1}% {:>20.1?}   (median of {runs}; build {:.2?}..{:.2?})",
            build,
            verification,
            100.0 * verification.as_secs_f64() / build.as_secs_f64(),
            record,
            builds.iter().min().unwrap(),
            builds.iter().max().unwrap(),
        );
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// The interpreter behind `python3` (not a launcher shim).
fn interpreter() -> PathBuf {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// The wheels of the requirements and their dependencies, downloaded once.
fn mirror(repo: &Path, python: &Path) -> PathBuf {
    let mirror = repo.join("target/bench-verify/mirror");
    let done = mirror.join(".done");
    if !done.is_file() {
        let _ = packsync::fsx::remove_tree(&mirror);
        fs_err::create_dir_all(&mirror).unwrap();
        println!(
            "mirror: pip download {} -> {}",
            REQUIREMENTS.join(" "),
            mirror.display()
        );
        let status = Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary",
                ":all:",
                "-d",
            ])
            .arg(&mirror)
            .args(REQUIREMENTS)
            .status()
            .unwrap();
        assert!(status.success(), "pip download failed");
        fs_err::write(&done, "").unwrap();
    }
    mirror
}

/// One pin per wheel of the mirror, with its sha256.
fn pins(mirror: &Path) -> Vec<Pin> {
    let mut pins: Vec<Pin> = fs_err::read_dir(mirror)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|file| Path::new(file).extension().is_some_and(|ext| ext == "whl"))
        .map(|file| {
            let mut parts = file.split('-');
            let name = parts.next().unwrap().replace('_', "-").to_lowercase();
            let version = parts.next().unwrap().to_string();
            Pin {
                sha256: packsync::mirror::sha256_file(&mirror.join(&file)).unwrap(),
                name,
                version,
                file,
            }
        })
        .collect();
    pins.sort_by(|a, b| a.name.cmp(&b.name));
    pins
}

fn site_packages(env: &Path) -> PathBuf {
    let lib = env.join("lib");
    let python = fs_err::read_dir(&lib)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python")
        })
        .unwrap();
    python.join("site-packages")
}
