//! `cargo bench --bench reconcile`: 200 packs in 200 Git repos, and 1000.
//!
//! Prints the median and spread of:
//! - plan: the pure `plan` function; config + Git + mirror + plan in-process (what `packsync
//!   plan` does after start-up); the release binary end to end (process start and the
//!   interpreter probe included), on a fresh site (200 installs) and on a converged one
//!   (target: under 20 ms);
//! - apply, the release binary on a site whose packs have no requirements (one shared
//!   virtualenv): the first apply into an empty state dir, and a no-op apply once everything
//!   is live (targets: 200 packs under 20 ms, 1000 packs under 60 ms);
//! - the no-op apply with the state in MongoDB, on the server of `PACKSYNC_TEST_MONGODB_URL`:
//!   run it as `scripts/with-mongodb cargo bench --bench reconcile`, which starts SecantusDB.
//!
//! With `PACKSYNC_BENCH_BASELINE=<an earlier packsync binary>`, each no-op apply runs both
//! binaries in turn on the same site, so that a change is measured against the machine's drift.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use packsync::desired::{self, WorkTrees};
use packsync::state::FileStore;

const PACKS: usize = 200;
/// The larger site whose no-op apply is timed too.
const SCALE: usize = 1000;
const RUNS: usize = 30;
/// Another `packsync` binary (an earlier commit's) to time the no-op apply against, runs
/// interleaved with this one's.
const BASELINE: &str = "PACKSYNC_BENCH_BASELINE";
/// A first apply builds 200 releases; fewer runs keep the bench short.
const FIRST_APPLY_RUNS: usize = 5;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    let started = Instant::now();
    build_site(dir.path(), &site, PACKS, Requirements::OnePerPack);
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
        assert!(
            !planned.resolution.has_errors(),
            "{:?}",
            planned.resolution.problems
        );
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
    report("`packsync plan --json` (release binary)", || {
        packsync(
            Path::new(env!("CARGO_BIN_EXE_packsync")),
            &site,
            &["plan", "--json"],
        );
    });
    bench_apply(dir.path());
}

fn bench_apply(root: &Path) {
    let root = root.join("apply");
    let site = root.join("site.toml");
    build_site(&root, &site, PACKS, Requirements::None);
    let binary = Path::new(env!("CARGO_BIN_EXE_packsync"));
    let apply = || packsync(binary, &site, &["apply"]);
    let reset = || {
        for dir in ["state", "packs", "virtualenvs", "configs"] {
            let path = root.join(dir);
            if path.exists() {
                packsync::fsx::remove_tree(&path).unwrap();
            }
        }
    };
    let mut first = Vec::new();
    for _ in 0..FIRST_APPLY_RUNS {
        reset();
        let start = Instant::now();
        let out = apply();
        first.push(start.elapsed());
        assert!(out.contains(&format!("{PACKS} applied")), "{out}");
    }
    first.sort();
    println!(
        "{:<45} median {:>9.2?}  min {:>9.2?}  max {:>9.2?}  ({FIRST_APPLY_RUNS} runs)",
        "`packsync apply`, first (200 releases)",
        first[FIRST_APPLY_RUNS / 2],
        first[0],
        first[FIRST_APPLY_RUNS - 1]
    );
    no_op("`packsync apply`, no-op", &site);
    report("`packsync plan`, converged", || {
        packsync(binary, &site, &["plan", "--detailed-exitcodes"]);
    });
    bench_no_op_at_scale(&root.join("scale"), SCALE);

    // The same site with its state in MongoDB: one more first apply fills the database.
    let url = std::env::var("PACKSYNC_TEST_MONGODB_URL").expect(
        "PACKSYNC_TEST_MONGODB_URL is not set: run `scripts/with-mongodb cargo bench --bench \
         reconcile`",
    );
    let mut config = fs_err::read_to_string(&site).unwrap();
    let _ = write!(
        config,
        "[state]\nurl = \"{url}\"\ndatabase = \"packsync_bench_{}\"\n",
        std::process::id()
    );
    fs_err::write(&site, config).unwrap();
    reset();
    let out = apply();
    assert!(out.contains(&format!("{PACKS} applied")), "{out}");
    report("`packsync apply`, no-op, state in MongoDB", || {
        let out = apply();
        assert!(out.contains("nothing to change"), "{out}");
    });
}

/// The no-op `apply` of the site `site` (every pack live): with `PACKSYNC_BENCH_BASELINE`, this
/// binary and the baseline, runs interleaved, so that the machine's drift hits both.
fn no_op(what: &str, site: &Path) {
    let apply_with = |binary: &Path| {
        let out = packsync(binary, site, &["apply"]);
        assert!(out.contains("nothing to change"), "{out}");
    };
    let binary = Path::new(env!("CARGO_BIN_EXE_packsync"));
    let Some(baseline) = std::env::var_os(BASELINE) else {
        report(&format!("{what} (release binary)"), || apply_with(binary));
        return;
    };
    let baseline = Path::new(&baseline);
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..=RUNS {
        for (index, binary) in [binary, baseline].into_iter().enumerate() {
            let start = Instant::now();
            apply_with(binary);
            times[index].push(start.elapsed());
        }
    }
    for (which, mut times) in ["release binary", "baseline binary"].into_iter().zip(times) {
        times.remove(0); // warm-up
        print_times(&format!("{what} ({which})"), &mut times);
    }
}

/// A site of `packs` packs, applied once, then its no-op `apply`.
fn bench_no_op_at_scale(root: &Path, packs: usize) {
    let site = root.join("site.toml");
    let started = Instant::now();
    build_site(root, &site, packs, Requirements::None);
    packsync(Path::new(env!("CARGO_BIN_EXE_packsync")), &site, &["apply"]);
    println!(
        "fixture: {packs} packs, built and applied in {:.1?}",
        started.elapsed()
    );
    no_op(&format!("`packsync apply`, no-op, {packs} packs"), &site);
}

/// `binary --config site args...`, which must succeed: its stdout.
fn packsync(binary: &Path, site: &Path, args: &[&str]) -> String {
    let out = Command::new(binary)
        .arg("--config")
        .arg(site)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
    print_times(what, &mut times);
}

fn print_times(what: &str, times: &mut [Duration]) {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Requirements {
    /// `requirements.txt` with `six` (resolved from its real wheel; planned only).
    OnePerPack,
    /// No requirements and no base requirements: every pack shares one empty virtualenv.
    None,
}

/// 200 repos with a pack each (pack.yaml, schema, maybe one requirement) and a one-wheel mirror.
fn build_site(root: &Path, site: &Path, packs: usize, requirements: Requirements) {
    let mirror = root.join("mirror");
    fs_err::create_dir_all(&mirror).unwrap();
    // A real wheel: the resolver reads its metadata.
    fs_err::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/mirror/six-1.17.0-py2.py3-none-any.whl"),
        mirror.join("six-1.17.0-py2.py3-none-any.whl"),
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
        "[agent]\nstate_dir = \"state\"\n[stackstorm]\npacks_dir = \"packs\"\n\
         virtualenvs_dir = \"virtualenvs\"\nconfigs_dir = \"configs\"\npython = \"{}\"\n",
        python.trim()
    );
    if requirements == Requirements::None {
        config.push_str("base_requirements = []\nsystem_site_packages = false\n");
    }
    config.push_str("[mirror]\npath = \"mirror\"\n");
    for i in 0..packs {
        let name = format!("pack{i:04}");
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
        if requirements == Requirements::OnePerPack {
            fs_err::write(repo.join("requirements.txt"), "six>=1.9  # st2 base\n").unwrap();
        }
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
