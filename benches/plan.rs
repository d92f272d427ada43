//! `cargo bench --bench plan`: the read-only half over 200 packs in 200 Git repos.
//!
//! Prints the median and spread of: the pure `plan` function; config + Git + mirror + plan
//! in-process (what `packsync plan` does after start-up); and the release binary end to end
//! (process start and the interpreter probe included). Target: median under 100 ms.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use packsync::desired::{self, WorkTrees};
use packsync::state::FileStore;

const PACKS: usize = 200;
const RUNS: usize = 30;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    let started = Instant::now();
    build_site(dir.path(), &site);
    println!(
        "fixture: {PACKS} packs in {PACKS} repos under {} (built in {:.1?})",
        dir.path().display(),
        started.elapsed()
    );

    let config = packsync::config::load(&site).unwrap();
    let pipeline = || {
        let config = packsync::config::load(&site).unwrap();
        let store = FileStore::new(&config.agent.state_dir);
        let planned = packsync::execute::plan(&config, &store, None).unwrap();
        let problems = &planned.resolution.problems;
        assert!(!planned.resolution.has_errors(), "{problems:?}");
        planned.plan
    };
    let resolution = desired::resolve(&config, None, WorkTrees::Ignore);
    let installed = packsync::model::Installed::default();
    report("plan() alone (pure)", || {
        packsync::plan::plan(&resolution.desired, &installed, config.agent.prune).unwrap();
    });
    report("config + git + mirror + plan, in-process", || {
        assert_eq!(pipeline().changes.len(), PACKS);
    });
    let binary = env!("CARGO_BIN_EXE_packsync");
    report("`packsync plan --json` (release binary)", || {
        let out = Command::new(binary)
            .arg("--config")
            .arg(&site)
            .args(["plan", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn report(what: &str, mut run: impl FnMut()) {
    run(); // warm-up: page cache, mirror hash cache
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{what:<45} median {:>9.2?}  min {:>9.2?}  max {:>9.2?}  ({RUNS} runs)",
        times[RUNS / 2],
        times[0],
        times[RUNS - 1]
    );
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.org",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// 200 repos with a pack each (pack.yaml, schema, one requirement) and a one-wheel mirror.
fn build_site(root: &Path, site: &Path) {
    let mirror = root.join("mirror");
    fs_err::create_dir_all(&mirror).unwrap();
    fs_err::write(
        mirror.join("six-1.16.0-py2.py3-none-any.whl"),
        b"not read by plan",
    )
    .unwrap();
    // The interpreter itself, as a StackStorm host configures it (`/opt/stackstorm/st2/bin/python3`),
    // not a launcher such as a pyenv shim, which alone costs 60 to 150 ms a call.
    let python = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(python.stdout).unwrap();
    let mut config = format!(
        "[agent]\nstate_dir = \"state\"\n[stackstorm]\npacks_dir = \"packs\"\npython = \"{}\"\n\
         [mirror]\npath = \"mirror\"\n",
        python.trim()
    );
    for i in 0..PACKS {
        let name = format!("pack{i:03}");
        let repo = root.join("repos").join(&name);
        fs_err::create_dir_all(repo.join("actions")).unwrap();
        fs_err::write(
            repo.join("pack.yaml"),
            format!(
                "ref: {name}\nname: {name}\ndescription: bench pack\nversion: 1.0.{i}\n\
                 author: bench\npython_versions: [\"3\"]\n"
            ),
        )
        .unwrap();
        fs_err::write(
            repo.join("config.schema.yaml"),
            "hosts:\n  type: string\n  required: true\nfanout:\n  type: integer\n  default: 64\n",
        )
        .unwrap();
        fs_err::write(repo.join("requirements.txt"), "six>=1.9  # st2 base\n").unwrap();
        fs_err::write(repo.join("actions/run.py"), "print('hi')\n").unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "init"]);
        git(&repo, &["tag", "v1.0.0"]);
        let _ = write!(
            config,
            "[[pack]]\nname = \"{name}\"\nsource = \"repos/{name}\"\nref = \"v1.0.0\"\n\
             [pack.config]\nhosts = \"node[1-10]\"\n"
        );
    }
    fs_err::write(site, config).unwrap();
}
