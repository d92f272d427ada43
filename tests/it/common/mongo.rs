//! MongoDB for the integration tests: the server `scripts/with-mongodb` started (or a real one
//! in `PACKSYNC_TEST_MONGODB_URL`), a database of its own per site, and SecantusDB servers a
//! test starts, kills and restarts itself.

#![allow(clippy::unwrap_used, reason = "test helpers panic on failure")]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The shared test server.
pub(crate) fn url() -> String {
    std::env::var("PACKSYNC_TEST_MONGODB_URL").expect(
        "PACKSYNC_TEST_MONGODB_URL is not set: run the tests with `scripts/test` (or \
         `scripts/with-mongodb cargo test`), which starts a MongoDB-compatible server",
    )
}

/// A database name no other test of any run uses.
pub(crate) fn unique_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "packsync_it_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops `database` of the server at `url`, best effort (the server may be gone).
pub(crate) fn drop_database(url: &str, database: &str) {
    let Ok(mut options) = mongodb::options::ClientOptions::parse(url).run() else {
        return;
    };
    options.server_selection_timeout = Some(Duration::from_secs(2));
    if let Ok(client) = mongodb::sync::Client::with_options(options) {
        let _ = client.database(database).drop().run();
    }
}

/// A SecantusDB server of one test, on its own port and storage; killed when dropped.
pub(crate) struct Server {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    storage: TempDir,
}

impl Server {
    /// Starts a server with `args` (`--standalone`, `--auth`) and waits until it answers.
    pub(crate) fn start(args: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            args: args.iter().map(ToString::to_string).collect(),
            storage: TempDir::new().unwrap(),
        };
        server.restart();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The PID of the running server.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `kill -9`: no shutdown, connections cut.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same port, storage and arguments, and waits until it answers.
    pub(crate) fn restart(&mut self) {
        self.restart_with(&[]);
    }

    /// Starts it again, with `extra` arguments this time.
    pub(crate) fn restart_with(&mut self, extra: &[&str]) {
        self.kill();
        let python = std::env::var_os("PACKSYNC_TEST_TOOLS_PYTHON").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python"),
            PathBuf::from,
        );
        assert!(
            python.exists(),
            "no SecantusDB at {}: run the tests with `scripts/test`, which installs it",
            python.display()
        );
        let child = Command::new(&python)
            .args(["-m", "secantus", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.storage.path().join("db"))
            // Every commit durable before it is acknowledged: the tests kill -9 it.
            .args(["--log-level", "WARNING", "--sync-on-commit"])
            .args(&self.args)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_mins(1);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "SecantusDB did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
