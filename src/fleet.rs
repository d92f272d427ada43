//! A fleet: the hosts of one StackStorm site deploying as one (`[fleet]`), coordinated through
//! the MongoDB database they share as their state store.
//!
//! Each host keeps its own releases and links (pack code is local to each node); what they
//! share is one document per rollout (a release of a pack going live on the fleet) in
//! `<prefix>rollouts`, moving through phases:
//!
//! - `prepare`: each host builds and gates the release and says so (`prepared.<host>`);
//! - `go`: set by the host that takes the rollout's lease once every host is prepared, or, at
//!   `prepare_timeout`, a quorum (`participants` are those prepared); each participant then
//!   switches its link and says so (`switched.<host>`);
//! - `registering`: the lease holder, once every participant has switched (or `lease_ttl`
//!   after the go), registers with StackStorm and purges, once for the whole site;
//! - `live` (then every host runs its `restart`) or `reverted` (registration failed: every
//!   host switches back, and the holder registers what was live before again).
//!
//! A failed build or gate on any host, or fewer than a quorum of hosts prepared at
//! `prepare_timeout`, ends the attempt as `aborted` before anything is switched; the next run
//! starts a new attempt of the same document. A host that arrives after the go (it was down,
//! or left out at the timeout) builds and gates, waits for `live`, then switches and restarts:
//! it catches up without registering again.
//!
//! The lease is part of the rollout: its holder, an expiry and a fencing token that every write
//! of the holder is conditioned on. A holder that died (or stalled past `lease_ttl`) is
//! replaced by the next host that looks, and its late writes change nothing. MongoDB's atomic
//! single-document updates are the only coordination; the hosts' clocks are assumed in step
//! (NTP), as leases anywhere assume.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mongodb::bson::{self, DateTime, Document, doc};
use mongodb::options::ReturnDocument;
use mongodb::sync::Collection;
use serde::Serialize;

use crate::config::{FleetConfig, SecretUrl, SiteConfig, StateConfig};
use crate::diagnostics::Diagnose;
use crate::model::{PackName, ReleaseId};
use crate::state::{self, StateError};

/// How often a host waiting for the others looks again.
const POLL: Duration = Duration::from_millis(100);

/// This host's side of the fleet.
pub struct Fleet {
    config: FleetConfig,
    /// How long a registration may run (`[stackstorm] command_timeout`).
    command_timeout: Duration,
    host: String,
    url: SecretUrl,
    rollouts: Collection<Document>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("name", &self.config.name)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("The site config `{}` declares no `[fleet]`", config.display())]
    NotConfigured { config: std::path::PathBuf },
    #[error("This host `{host}` is not one of the hosts of the fleet `{fleet}` ({})", hosts.join(", "))]
    NotAMember {
        host: String,
        fleet: String,
        hosts: Vec<String>,
    },
    #[error(transparent)]
    State(#[from] StateError),
    /// Nothing was switched anywhere.
    #[error("The rollout of `{pack}` {release} to the fleet stopped before the switch: {reason}")]
    Aborted {
        pack: PackName,
        release: ReleaseId,
        reason: String,
    },
    /// Every host switches back.
    #[error(
        "Registering `{pack}` {release} on `{host}` failed, so every host switches back: {error}"
    )]
    RegistrationFailed {
        pack: PackName,
        release: ReleaseId,
        host: String,
        error: String,
    },
}

impl Diagnose for FleetError {
    fn hint(&self) -> Option<String> {
        match self {
            FleetError::NotAMember { .. } => Some(
                "set `[agent] host` to this host's name in `[fleet] hosts`, or add it there on \
                 every host"
                    .to_string(),
            ),
            FleetError::Aborted { .. } => Some(
                "`packsync status --fleet` shows which host is behind or failed; the next run \
                 tries again"
                    .to_string(),
            ),
            FleetError::RegistrationFailed { .. } => Some(
                "the error is that of the host that registered; `packsync history` on it has \
                 the command's output"
                    .to_string(),
            ),
            FleetError::NotConfigured { .. } => Some(
                "add `[fleet]` with its `name` and `hosts` (and `[state]` on MongoDB) to deploy \
                 with other hosts; `status --all-hosts` shows what other hosts recorded"
                    .to_string(),
            ),
            FleetError::State(_) => None,
        }
    }

    fn diagnostic_source(&self) -> Option<&dyn Diagnose> {
        match self {
            FleetError::State(err) => Some(err),
            _ => None,
        }
    }
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Prepare,
    Go,
    Registering,
    Live,
    Aborted,
    Reverted,
    /// Live on the waves that switched, stopped before the next: a host of the last wave
    /// found it unhealthy (or not healthy in time).
    Halted,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Go => "go",
            Phase::Registering => "registering",
            Phase::Live => "live",
            Phase::Aborted => "aborted",
            Phase::Reverted => "reverted",
            Phase::Halted => "halted",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "prepare" => Phase::Prepare,
            "go" => Phase::Go,
            "registering" => Phase::Registering,
            "live" => Phase::Live,
            "aborted" => Phase::Aborted,
            "reverted" => Phase::Reverted,
            "halted" => Phase::Halted,
            _ => return None,
        })
    }
}

/// One rollout as `status --fleet` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutStatus {
    pub pack: String,
    pub release: String,
    pub attempt: i64,
    pub phase: Phase,
    pub started_at: Option<jiff::Timestamp>,
    /// Host -> when it had the release built and gated.
    pub prepared: BTreeMap<String, jiff::Timestamp>,
    /// Host -> why it could not.
    pub failed: BTreeMap<String, String>,
    pub participants: Vec<String>,
    pub switched: BTreeMap<String, jiff::Timestamp>,
    pub restarted: BTreeMap<String, jiff::Timestamp>,
    /// Host -> when it found the live release healthy (`[stackstorm] health`).
    pub healthy: BTreeMap<String, jiff::Timestamp>,
    /// The wave switching now (0 first).
    pub wave: i64,
    pub registered_by: Option<String>,
    pub reason: Option<String>,
    /// From the first host's switch to the last's: how long two releases of the pack served
    /// side by side.
    pub window_ms: Option<i64>,
    pub updated_at: Option<jiff::Timestamp>,
}

fn millis(at: jiff::Timestamp) -> DateTime {
    DateTime::from_millis(at.as_millisecond())
}

fn timestamp(at: DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(at.timestamp_millis()).ok()
}

fn now() -> DateTime {
    millis(crate::model::now())
}

impl Fleet {
    /// This host's side of the fleet `site` declares, if any. Nothing is sent yet.
    pub fn open(site: &SiteConfig, host: &str) -> Result<Option<Self>, FleetError> {
        let (Some(config), StateConfig::MongoDb(mongo)) = (&site.fleet, &site.state) else {
            return Ok(None);
        };
        if !config.hosts.iter().any(|member| member == host) {
            return Err(FleetError::NotAMember {
                host: host.to_string(),
                fleet: config.name.clone(),
                hosts: config.hosts.clone(),
            });
        }
        let (_, database) = state::open_database(mongo)?;
        Ok(Some(Self {
            config: config.clone(),
            command_timeout: site.stackstorm.command_timeout,
            host: host.to_string(),
            url: mongo.url.clone(),
            rollouts: database.collection(&format!("{}rollouts", mongo.collection_prefix)),
        }))
    }

    fn error(&self, operation: &'static str) -> impl Fn(mongodb::error::Error) -> FleetError {
        let url = self.url.clone();
        move |err| FleetError::State(state::driver_error(&url, operation, &err))
    }

    /// The rollouts of this fleet (of `pack`, or all), newest first, at most `limit`.
    pub fn rollouts(
        &self,
        pack: Option<&PackName>,
        limit: i64,
    ) -> Result<Vec<RolloutStatus>, FleetError> {
        let mut filter = doc! { "fleet": &self.config.name };
        if let Some(pack) = pack {
            filter.insert("pack", pack.as_str());
        }
        let cursor = self
            .rollouts
            .find(filter)
            .sort(doc! { "updated_at": -1 })
            .limit(limit)
            .run()
            .map_err(self.error("read the rollouts"))?;
        let mut rollouts = Vec::new();
        for document in cursor {
            let document = document.map_err(self.error("read the rollouts"))?;
            rollouts.push(status_of(&document));
        }
        Ok(rollouts)
    }

    /// Joins the rollout of `release` of `pack`: the current attempt, or a new one when the
    /// last ended without going live.
    pub fn begin(&self, pack: &PackName, release: &ReleaseId) -> Result<Rollout<'_>, FleetError> {
        let id = format!("{}/{pack}/{release}", self.config.name);
        loop {
            let found = self.read(&id)?;
            let Some(document) = found else {
                let inserted = self
                    .rollouts
                    .insert_one(fresh(&self.config.name, &id, pack, release, 1))
                    .run();
                match inserted {
                    Ok(_) => {}
                    // Another host started it first: join it.
                    Err(err) if is_duplicate_key(&err) => {}
                    Err(err) => return Err(self.error("start a rollout")(err)),
                }
                continue;
            };
            let attempt = document.get_i64("attempt").unwrap_or(1);
            let phase = phase_of(&document);
            let started = document.get_datetime("started_at").ok().copied();
            let stale = phase == Phase::Prepare
                && started.is_some_and(|started| {
                    elapsed(started) > self.config.prepare_timeout + self.config.lease_ttl
                });
            if matches!(phase, Phase::Aborted | Phase::Reverted) || stale {
                // A new attempt; whoever gets there first starts it, the others join it.
                self.rollouts
                    .update_one(
                        doc! { "_id": &id, "attempt": attempt, "phase": phase.as_str() },
                        doc! { "$set": fresh(&self.config.name, &id, pack, release, attempt + 1) },
                    )
                    .run()
                    .map_err(self.error("start a rollout"))?;
                continue;
            }
            let participant = strings(&document, "participants").contains(&self.host);
            let catching_up = match phase {
                Phase::Prepare => false,
                Phase::Go | Phase::Registering => !participant,
                _ => true,
            };
            tracing::info!(%pack, %release, attempt, phase = phase.as_str(), catching_up, "joined the fleet's rollout");
            return Ok(Rollout {
                fleet: self,
                id,
                pack: pack.clone(),
                release: release.clone(),
                attempt,
                token: None,
                catching_up,
                registered_here: false,
            });
        }
    }

    /// Whether `release` of `pack` went live on the fleet (and was registered for it).
    pub fn is_live(&self, pack: &PackName, release: &ReleaseId) -> Result<bool, FleetError> {
        let id = format!("{}/{pack}/{release}", self.config.name);
        Ok(self
            .read(&id)?
            .is_some_and(|document| matches!(phase_of(&document), Phase::Live | Phase::Halted)))
    }

    fn read(&self, id: &str) -> Result<Option<Document>, FleetError> {
        self.rollouts
            .find_one(doc! { "_id": id })
            .run()
            .map_err(self.error("read a rollout"))
    }
}

/// A rollout's document at the start of an attempt.
fn fresh(fleet: &str, id: &str, pack: &PackName, release: &ReleaseId, attempt: i64) -> Document {
    let at = now();
    doc! {
        "_id": id,
        "fleet": fleet,
        "pack": pack.as_str(),
        "release": release.as_str(),
        "attempt": attempt,
        "phase": Phase::Prepare.as_str(),
        "started_at": at,
        "updated_at": at,
        "prepared": {},
        "failed": {},
        "participants": [],
        "switched": {},
        "restarted": {},
        "healthy": {},
        "unhealthy": {},
        "wave": 0_i64,
        "lease": {},
        "registered_by": bson::Bson::Null,
        "reason": bson::Bson::Null,
        "window_ms": bson::Bson::Null,
    }
}

/// A host's name as a field name: MongoDB reads a `.` in one as a path.
fn field_name(host: &str) -> String {
    host.replace('.', "~")
}

/// The host a field name of [`field_name`] stands for.
fn host_of(field: &str) -> String {
    field.replace('~', ".")
}

fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(write)) => {
            write.code == 11000
        }
        mongodb::error::ErrorKind::Command(command) => command.code == 11000,
        _ => false,
    }
}

fn phase_of(document: &Document) -> Phase {
    document
        .get_str("phase")
        .ok()
        .and_then(Phase::parse)
        .unwrap_or(Phase::Aborted)
}

fn strings(document: &Document, key: &str) -> Vec<String> {
    document
        .get_array(key)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn times(document: &Document, key: &str) -> BTreeMap<String, DateTime> {
    document
        .get_document(key)
        .map(|map| {
            map.iter()
                .filter_map(|(field, at)| Some((host_of(field), *at.as_datetime()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn elapsed(since: DateTime) -> Duration {
    Duration::from_millis(
        u64::try_from(now().timestamp_millis() - since.timestamp_millis()).unwrap_or(0),
    )
}

fn status_of(document: &Document) -> RolloutStatus {
    let text = |key: &str| document.get_str(key).ok().map(str::to_string);
    let stamped = |key: &str| {
        times(document, key)
            .into_iter()
            .filter_map(|(host, at)| Some((host, timestamp(at)?)))
            .collect()
    };
    RolloutStatus {
        pack: text("pack").unwrap_or_default(),
        release: text("release").unwrap_or_default(),
        attempt: document.get_i64("attempt").unwrap_or(1),
        phase: phase_of(document),
        started_at: document
            .get_datetime("started_at")
            .ok()
            .and_then(|at| timestamp(*at)),
        prepared: stamped("prepared"),
        failed: document
            .get_document("failed")
            .map(|failed| {
                failed
                    .iter()
                    .filter_map(|(field, why)| Some((host_of(field), why.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        participants: strings(document, "participants"),
        switched: stamped("switched"),
        restarted: stamped("restarted"),
        healthy: stamped("healthy"),
        wave: document.get_i64("wave").unwrap_or(0),
        registered_by: text("registered_by"),
        reason: text("reason"),
        window_ms: document.get_i64("window_ms").ok(),
        updated_at: document
            .get_datetime("updated_at")
            .ok()
            .and_then(|at| timestamp(*at)),
    }
}

/// This host's part in one rollout.
pub struct Rollout<'f> {
    fleet: &'f Fleet,
    id: String,
    pack: PackName,
    release: ReleaseId,
    attempt: i64,
    /// The fencing token of the lease while this host holds it.
    token: Option<i64>,
    /// Arrived after the go: switches once the release is live, registers nothing.
    catching_up: bool,
    /// This host registered the release (so it also purges, and registers again when the
    /// fleet switches back).
    registered_here: bool,
}

/// What a host waiting for the registration learns.
pub enum Registration<E> {
    /// Registered, here or by another host.
    Registered,
    /// This host registered, and it failed.
    FailedHere(E),
}

impl Rollout<'_> {
    /// Whether this host registered the release.
    pub fn registered_here(&self) -> bool {
        self.registered_here
    }

    /// A filter on this attempt of the rollout.
    fn this_attempt(&self) -> Document {
        doc! { "_id": &self.id, "attempt": self.attempt }
    }

    /// Sets `fields` on this attempt (and `updated_at`), if it is still the current one.
    fn set(
        &self,
        filter: Document,
        fields: Document,
        operation: &'static str,
    ) -> Result<bool, FleetError> {
        let mut fields = fields;
        fields.insert("updated_at", now());
        let updated = self
            .fleet
            .rollouts
            .update_one(filter, doc! { "$set": fields })
            .run()
            .map_err(self.fleet.error(operation))?;
        Ok(updated.matched_count > 0)
    }

    fn host_key(&self, map: &str) -> String {
        format!("{map}.{}", field_name(&self.fleet.host))
    }

    fn read(&self) -> Result<Document, FleetError> {
        let document = self.fleet.read(&self.id)?;
        match document {
            Some(document) if document.get_i64("attempt").ok() == Some(self.attempt) => {
                Ok(document)
            }
            _ => Err(self.aborted("another attempt of the rollout started")),
        }
    }

    fn aborted(&self, reason: impl Into<String>) -> FleetError {
        FleetError::Aborted {
            pack: self.pack.clone(),
            release: self.release.clone(),
            reason: reason.into(),
        }
    }

    /// This host could not build or gate the release: the attempt ends before anything is
    /// switched anywhere.
    pub fn fail(&self, why: &str) {
        let reason = format!("`{}` failed to build or gate it: {why}", self.fleet.host);
        let mut filter = self.this_attempt();
        filter.insert("phase", Phase::Prepare.as_str());
        let failed = self
            .set(
                self.this_attempt(),
                doc! { self.host_key("failed"): why },
                "record a failure",
            )
            .and_then(|_| {
                self.set(
                    filter,
                    doc! { "phase": Phase::Aborted.as_str(), "reason": reason },
                    "abort a rollout",
                )
            });
        if let Err(err) = failed {
            tracing::warn!(pack = %self.pack, error = %err, "cannot tell the fleet this host failed; the others wait until `prepare_timeout`");
        }
    }

    /// The release is built and gated here; waits until this host may switch: every host (or
    /// at `prepare_timeout` a quorum) is prepared and the go is given, or, for a host that
    /// arrived after the go, the release is live on the others.
    pub fn prepared_await_go(&mut self) -> Result<(), FleetError> {
        let config = &self.fleet.config;
        let deadline =
            Instant::now() + config.prepare_timeout + self.fleet.command_timeout + config.lease_ttl;
        // A gate that ends while the database restarts is no failure: the host says it is
        // prepared once the database is back.
        loop {
            let recorded = self.set(
                self.this_attempt(),
                doc! { self.host_key("prepared"): now() },
                "record this host as prepared",
            );
            if self.ride_out(recorded, deadline)?.is_some() {
                break;
            }
            std::thread::sleep(POLL);
        }
        loop {
            let Some(document) = self.ride_out(self.read(), deadline)? else {
                std::thread::sleep(POLL);
                continue;
            };
            let phase = phase_of(&document);
            match phase {
                Phase::Aborted | Phase::Reverted | Phase::Halted => {
                    let reason = document.get_str("reason").unwrap_or("no reason recorded");
                    return Err(self.aborted(reason.to_string()));
                }
                Phase::Go | Phase::Registering | Phase::Live => {
                    let current = wave_index(&document);
                    let participant = strings(&document, "participants").contains(&self.fleet.host);
                    // A host left out at the timeout (or back after the go) switches once the
                    // release is live on every wave.
                    self.catching_up |= !participant;
                    let my_turn = if participant {
                        config.wave_of(&self.fleet.host).unwrap_or(0) <= current
                    } else {
                        phase == Phase::Live && current + 1 >= config.waves.len()
                    };
                    if my_turn {
                        return Ok(());
                    }
                    if phase == Phase::Live {
                        self.ride_out(self.advance_wave(&document, current), deadline)?;
                    }
                }
                Phase::Prepare => {
                    let prepared: Vec<String> = times(&document, "prepared")
                        .into_keys()
                        .filter(|host| config.hosts.contains(host))
                        .collect();
                    let waited = document
                        .get_datetime("started_at")
                        .map(|started| elapsed(*started))
                        .unwrap_or_default();
                    let timed_out = waited >= config.prepare_timeout;
                    if prepared.len() == config.hosts.len()
                        || timed_out && prepared.len() >= config.quorum
                    {
                        let given = self.give_go(&prepared);
                        if self.ride_out(given, deadline)?.is_some() {
                            continue;
                        }
                    }
                    if timed_out {
                        let missing: Vec<&str> = config
                            .hosts
                            .iter()
                            .filter(|host| !prepared.contains(host))
                            .map(String::as_str)
                            .collect();
                        let reason = format!(
                            "held: {} of the {} hosts needed had it built within {} (not: {})",
                            prepared.len(),
                            config.quorum,
                            jiff::SignedDuration::try_from(config.prepare_timeout)
                                .map(|d| format!("{d:#}"))
                                .unwrap_or_default(),
                            missing.join(", ")
                        );
                        let mut filter = self.this_attempt();
                        filter.insert("phase", Phase::Prepare.as_str());
                        let held = self.set(
                            filter,
                            doc! { "phase": Phase::Aborted.as_str(), "reason": reason },
                            "hold a rollout",
                        );
                        if self.ride_out(held, deadline)?.is_some() {
                            continue;
                        }
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// Gives the go to the hosts `prepared`, unless another host did first.
    fn give_go(&mut self, prepared: &[String]) -> Result<(), FleetError> {
        let mut filter = self.this_attempt();
        filter.insert("phase", Phase::Prepare.as_str());
        let at = now();
        let given = self.set(
            filter,
            doc! {
                "phase": Phase::Go.as_str(),
                "participants": prepared,
                "go_at": at,
                "go_by": &self.fleet.host,
                "wave": 0_i64,
                "wave_at": at,
            },
            "give the go",
        )?;
        if given {
            tracing::info!(pack = %self.pack, release = %self.release, hosts = %prepared.join(","), "gave the go");
        }
        Ok(())
    }

    /// This host switched its link to `release` (the new one or, going back, the previous).
    pub fn switched(&self, forward: bool) {
        let key = if forward { "switched" } else { "switched_back" };
        if let Err(err) = self.set(
            self.this_attempt(),
            doc! { self.host_key(key): now() },
            "record a switch",
        ) {
            tracing::warn!(pack = %self.pack, error = %err, "cannot tell the fleet this host switched");
        }
    }

    /// Waits for the registration of the release: run here by `register` when this host holds
    /// (or takes over) the lease, once every participant has switched; else by another host.
    pub fn registration<E: std::fmt::Display>(
        &mut self,
        register: impl FnOnce() -> Result<(), E>,
    ) -> Result<Registration<E>, FleetError> {
        let mut register = Some(register);
        // A registration that runs renews its lease, and one whose host died is taken over
        // after `lease_ttl`: beyond this, something else is wrong, and waiting longer helps
        // nobody.
        let deadline =
            Instant::now() + self.fleet.command_timeout + 3 * self.fleet.config.lease_ttl;
        loop {
            if Instant::now() > deadline {
                return Err(self.aborted(
                    "no host registered the release within `[stackstorm] command_timeout` and \
                     `[fleet] lease_ttl`",
                ));
            }
            let Some(document) = self.ride_out(self.read(), deadline)? else {
                std::thread::sleep(POLL);
                continue;
            };
            match phase_of(&document) {
                Phase::Live | Phase::Halted => return Ok(Registration::Registered),
                Phase::Reverted => {
                    return Err(FleetError::RegistrationFailed {
                        pack: self.pack.clone(),
                        release: self.release.clone(),
                        host: document.get_str("registered_by").unwrap_or("?").to_string(),
                        error: document.get_str("reason").unwrap_or_default().to_string(),
                    });
                }
                Phase::Aborted => {
                    let reason = document.get_str("reason").unwrap_or("no reason recorded");
                    return Err(self.aborted(reason.to_string()));
                }
                Phase::Prepare => {}
                Phase::Go | Phase::Registering if self.catching_up => {}
                Phase::Go | Phase::Registering => {
                    // The lease goes to a host of the first wave that switches: registration
                    // reads its packs.
                    let participants = strings(&document, "participants");
                    let first_wave = participants
                        .iter()
                        .filter_map(|host| self.fleet.config.wave_of(host))
                        .min();
                    let eligible = self.fleet.config.wave_of(&self.fleet.host) == first_wave;
                    let holds = eligible && {
                        let held = self.hold_lease(&document);
                        self.ride_out(held, deadline)? == Some(true)
                    };
                    if holds {
                        let switched = times(&document, "switched");
                        let go_at = document.get_datetime("go_at").ok().copied();
                        // The first wave's hosts: the later ones switch after the registration.
                        let all_switched = participants
                            .iter()
                            .filter(|host| self.fleet.config.wave_of(host) == first_wave)
                            .all(|host| switched.contains_key(host));
                        let waited_long =
                            go_at.is_none_or(|go| elapsed(go) >= self.fleet.config.lease_ttl);
                        if all_switched || waited_long {
                            let register = register.take().expect("registered once per rollout");
                            return self.register_here(register, &switched);
                        }
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// `result`, with a database that cannot be reached before `deadline` (restarting, failing
    /// over) taken as no answer yet: the caller looks again.
    fn ride_out<T>(
        &self,
        result: Result<T, FleetError>,
        deadline: Instant,
    ) -> Result<Option<T>, FleetError> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(FleetError::State(StateError::Unreachable { message, .. }))
                if Instant::now() < deadline =>
            {
                tracing::warn!(pack = %self.pack, %message, "the state store is unreachable; the rollout waits for it");
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Whether this host holds the lease now: it did and renewed it, or took it over from a
    /// holder whose lease ran out.
    fn hold_lease(&mut self, document: &Document) -> Result<bool, FleetError> {
        let lease = document.get_document("lease").ok();
        let holder = lease.and_then(|lease| lease.get_str("holder").ok());
        let token = lease.and_then(|lease| lease.get_i64("token").ok());
        let expiry = lease.and_then(|lease| lease.get_datetime("expires_at").ok().copied());
        let mine =
            holder == Some(self.fleet.host.as_str()) && token.is_some() && token == self.token;
        let expired = expiry.is_none_or(|at| at.timestamp_millis() <= now().timestamp_millis());
        if !mine && !expired {
            return Ok(false);
        }
        let mut filter = self.this_attempt();
        filter.insert(
            "lease.token",
            token.map_or(bson::Bson::Null, bson::Bson::Int64),
        );
        let updated = self
            .fleet
            .rollouts
            .find_one_and_update(
                filter,
                doc! {
                    "$set": { "lease.holder": &self.fleet.host, "lease.expires_at": self.lease_expiry() },
                    "$inc": { "lease.token": i64::from(!mine) },
                },
            )
            .return_document(ReturnDocument::After)
            .run()
            .map_err(self.fleet.error("take the lease"))?;
        self.token = updated
            .as_ref()
            .and_then(|document| document.get_document("lease").ok())
            .and_then(|lease| lease.get_i64("token").ok());
        if updated.is_some() && !mine {
            tracing::info!(pack = %self.pack, release = %self.release, previous = holder.unwrap_or("none"), "took over the rollout's lease");
        }
        Ok(updated.is_some())
    }

    /// Registers as the lease holder, renewing the lease while `register` runs, and records
    /// the result under the fencing token.
    fn register_here<E: std::fmt::Display>(
        &mut self,
        register: impl FnOnce() -> Result<(), E>,
        switched: &BTreeMap<String, DateTime>,
    ) -> Result<Registration<E>, FleetError> {
        let token = self.token.unwrap_or_default();
        let mut filter = self.this_attempt();
        filter.insert("lease.token", token);
        if !self.set(
            filter.clone(),
            doc! { "phase": Phase::Registering.as_str(), "registered_by": &self.fleet.host },
            "record the registration",
        )? {
            return self.registration(register);
        }
        self.registered_here = true;
        let done = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| self.renew_while(&done, &filter));
            let result = register();
            done.store(true, std::sync::atomic::Ordering::Release);
            result
        });
        let window = match (switched.values().min(), switched.values().max()) {
            (Some(first), Some(last)) => {
                bson::Bson::Int64(last.timestamp_millis() - first.timestamp_millis())
            }
            _ => bson::Bson::Null,
        };
        let fields = match &result {
            Ok(()) => {
                doc! { "phase": Phase::Live.as_str(), "window_ms": window, "registered_at": now() }
            }
            Err(err) => doc! { "phase": Phase::Reverted.as_str(), "reason": err.to_string() },
        };
        if !self.set(filter, fields, "record the registration")? {
            tracing::warn!(pack = %self.pack, "the lease ran out while registering; the host that took it over decides");
        }
        Ok(match result {
            Ok(()) => Registration::Registered,
            Err(err) => Registration::FailedHere(err),
        })
    }

    /// When a lease taken or renewed now runs out.
    fn lease_expiry(&self) -> DateTime {
        let ttl = i64::try_from(self.fleet.config.lease_ttl.as_millis()).unwrap_or(i64::MAX);
        DateTime::from_millis(now().timestamp_millis().saturating_add(ttl))
    }

    /// Renews the lease every third of its time until `done`.
    fn renew_while(&self, done: &std::sync::atomic::AtomicBool, filter: &Document) {
        let step = self.fleet.config.lease_ttl / 3;
        let mut waited = Duration::ZERO;
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(POLL.min(step));
            waited += POLL.min(step);
            if waited < step {
                continue;
            }
            waited = Duration::ZERO;
            if let Err(err) = self.set(
                filter.clone(),
                doc! { "lease.expires_at": self.lease_expiry() },
                "renew the lease",
            ) {
                tracing::warn!(pack = %self.pack, error = %err, "cannot renew the rollout's lease");
            }
        }
    }

    /// Starts the next wave once every participant of wave `current` found the release healthy;
    /// halts the rollout when one found it unhealthy, or none said in time.
    fn advance_wave(&self, document: &Document, current: usize) -> Result<(), FleetError> {
        let config = &self.fleet.config;
        let participants = strings(document, "participants");
        let members: Vec<&String> = config
            .waves
            .get(current)
            .into_iter()
            .flatten()
            .filter(|host| participants.contains(host))
            .collect();
        let healthy = times(document, "healthy");
        let unhealthy = document.get_document("unhealthy").ok().and_then(|map| {
            map.iter()
                .find_map(|(field, why)| Some((host_of(field), why.as_str()?.to_string())))
        });
        let since = document.get_datetime("wave_at").ok().copied();
        let late = since.is_some_and(|since| {
            elapsed(since) > config.prepare_timeout + self.fleet.command_timeout
        });
        let mut filter = self.this_attempt();
        filter.insert("wave", i64::try_from(current).unwrap_or(i64::MAX));
        filter.insert("phase", Phase::Live.as_str());
        let halt = |reason: String| {
            tracing::info!(pack = %self.pack, %reason, "the rollout halts");
            self.set(
                filter.clone(),
                doc! { "phase": Phase::Halted.as_str(), "reason": reason },
                "halt a rollout",
            )
        };
        if let Some((host, why)) = unhealthy {
            halt(format!(
                "halted after wave {}: `{host}` found the release unhealthy: {why}",
                current + 1
            ))?;
        } else if members.iter().all(|host| healthy.contains_key(*host)) {
            self.set(
                filter,
                doc! { "wave": i64::try_from(current + 1).unwrap_or(i64::MAX), "wave_at": now() },
                "start the next wave",
            )?;
        } else if late {
            let missing: Vec<&str> = members
                .iter()
                .filter(|host| !healthy.contains_key(**host))
                .map(|host| host.as_str())
                .collect();
            halt(format!(
                "halted after wave {}: no health report from {}",
                current + 1,
                missing.join(", ")
            ))?;
        }
        Ok(())
    }

    /// What this host's `[stackstorm] health` found of the live release (`Ok` without one):
    /// the next wave waits for it.
    pub fn health(&self, found: Result<(), String>) {
        let fields = match found {
            Ok(()) => doc! { self.host_key("healthy"): now() },
            Err(why) => doc! { self.host_key("unhealthy"): why },
        };
        if let Err(err) = self.set(self.this_attempt(), fields, "record a health check") {
            tracing::warn!(pack = %self.pack, error = %err, "cannot tell the fleet what the health check found");
        }
    }

    /// This host ran its `restart` after the release went live.
    pub fn restarted(&self) {
        if let Err(err) = self.set(
            self.this_attempt(),
            doc! { self.host_key("restarted"): now() },
            "record a restart",
        ) {
            tracing::warn!(pack = %self.pack, error = %err, "cannot tell the fleet this host restarted");
        }
    }
}

/// The wave of a rollout switching now.
fn wave_index(document: &Document) -> usize {
    document
        .get_i64("wave")
        .ok()
        .and_then(|wave| usize::try_from(wave).ok())
        .unwrap_or(0)
}
