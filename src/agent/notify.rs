//! systemd's notification protocol (`sd_notify(3)`), for the unit's `Type=notify` and
//! `WatchdogSec=`: one datagram per state to `$NOTIFY_SOCKET`, a path or (`@name`) a name in
//! the abstract namespace. Without `$NOTIFY_SOCKET` (not under systemd) nothing is sent.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where systemd listens for this service's states.
#[derive(Debug)]
pub(super) struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// The notifier of `$NOTIFY_SOCKET`, when systemd set it.
    pub(super) fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let path = path.to_string_lossy();
        let address = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(path.as_ref()),
        };
        let notifier = address
            .and_then(|address| Ok((UnixDatagram::unbound()?, address)))
            .map(|(socket, address)| Self { socket, address });
        match notifier {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                tracing::warn!(socket = %path, %error, "cannot notify systemd");
                None
            }
        }
    }

    /// Sends `state` (`READY=1`, `WATCHDOG=1`, `STOPPING=1`).
    pub(super) fn send(&self, state: &str) {
        if let Err(error) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            tracing::warn!(state, %error, "cannot notify systemd");
        }
    }
}

/// How often to tell systemd the agent is alive: half its `WatchdogSec=`, when the watchdog
/// is on and watches this process.
pub(super) fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_string_lossy() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec) / 2)
}
