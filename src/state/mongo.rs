//! The MongoDB state store, in StackStorm's database by default, next to its `pack_d_b`:
//!
//! - `<prefix>releases`: one document per host and pack (unique index on both): the active
//!   release, spelled out for queries, the kept releases, a `status` and the last error;
//! - `<prefix>history`: one document per change, only ever inserted;
//! - `<prefix>runs`: one document per run.
//!
//! Every document names its host, and every read and write of this store is filtered by it,
//! so hosts sharing one database never touch each other's documents. A record and its history
//! entry are written in one transaction where the server takes them (a replica set, which
//! StackStorm's own deployments are); on a standalone server the entry goes first, as in the
//! file store.
//!
//! Times that queries sort or filter on (`time`, `activated_at`, `updated_at`,
//! `started_at`) are BSON dates, to the millisecond, as packsync's own timestamps are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};

use mongodb::IndexModel;
use mongodb::bson::{self, DateTime, Document, doc};
use mongodb::error::{Error as DriverError, ErrorKind, TRANSIENT_TRANSACTION_ERROR};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::sync::{Client, ClientSession, Collection, Database};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{
    ActiveRelease, Failure, FileStore, HistoryEntry, HostRecords, Operation, Outcome, PackRecord,
    RegisteredPack, ReleaseRecord, RunRecord, RunnerSwitch, StateError, StateStore,
};
use crate::activate::Adoption;
use crate::config::{MongoConfig, SecretUrl};
use crate::model::{self, Digest, PackName, ReleaseId, Revision, Suspension};
use crate::store::Layout;

/// StackStorm's collection of registered packs (mongoengine's name for `PackDB`).
const ST2_PACKS: &str = "pack_d_b";

/// The store of one host in one MongoDB database.
pub struct MongoStore {
    client: Client,
    database: Database,
    host: String,
    url: SecretUrl,
    /// Where this host's releases are, for the paths the records spell out.
    layout: Layout,
    releases: Collection<Document>,
    history: Collection<Document>,
    runs: Collection<Document>,
    runner_switches: Collection<Document>,
    suspensions: Collection<Document>,
    /// Whether the indexes were made sure of: once per process, before the first write.
    indexed: Mutex<bool>,
    /// Cleared when the server refuses transactions (a standalone server).
    transactions: AtomicBool,
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("url", &self.url)
            .field("database", &self.database.name())
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// What `packsync state import` copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// Pack records written (each replaces the one of the same pack).
    pub records: usize,
    /// History entries added; those already there are skipped.
    pub history: usize,
    pub runs: usize,
    pub runner_switches: usize,
}

impl MongoStore {
    /// A client for `config`, for `host`, whose releases are laid out as `layout` says.
    /// Nothing is sent yet: the first operation connects, and fails after `config.timeout`
    /// when no server answers.
    pub fn connect(config: &MongoConfig, host: &str, layout: Layout) -> Result<Self, StateError> {
        let url = config.url.clone();
        let mut options = ClientOptions::parse(url.expose())
            .run()
            .map_err(|err| classify(&url, "read its URL", &err))?;
        options.app_name = Some(format!("packsync {}", env!("CARGO_PKG_VERSION")));
        options.server_selection_timeout = Some(config.timeout);
        options.connect_timeout = Some(config.timeout);
        let client =
            Client::with_options(options).map_err(|err| classify(&url, "connect", &err))?;
        let database = client.database(&config.database);
        let collection = |name: &str| {
            database.collection::<Document>(&format!("{}{name}", config.collection_prefix))
        };
        Ok(Self {
            releases: collection("releases"),
            history: collection("history"),
            runs: collection("runs"),
            runner_switches: collection("runner_switches"),
            suspensions: collection("suspensions"),
            database,
            client,
            host: host.to_string(),
            url,
            layout,
            indexed: Mutex::new(false),
            transactions: AtomicBool::new(true),
        })
    }

    /// Copies the records, history and runs of `from` (this host's embedded store) into this
    /// store. Records replace those of the same pack; history entries and runs already here
    /// are skipped, so importing twice adds nothing.
    pub fn import(&self, from: &FileStore) -> Result<Imported, StateError> {
        self.ensure_indexes()?;
        let mut imported = Imported::default();
        for (pack, record) in from.load()? {
            self.replace_record(None, &pack, &record)
                .map_err(|err| self.error("write a record", &err))?;
            imported.records += 1;
        }

        let present: BTreeSet<HistoryKey> = self
            .find::<HistoryDocument>(&self.history, doc! { "host": &self.host }, doc! {}, None)?
            .iter()
            .map(HistoryDocument::key)
            .collect();
        // Oldest first, so that insertion order is time order.
        let mut entries = from.history(None, None)?;
        entries.reverse();
        let missing: Vec<Document> = entries
            .into_iter()
            .map(|entry| HistoryDocument::of(&self.host, entry))
            .filter(|document| !present.contains(&document.key()))
            .map(|document| to_document(&document))
            .collect();
        imported.history = self.insert_all(&self.history, missing, "add history entries")?;

        let present: BTreeSet<String> = self
            .find::<RunDocument>(&self.runs, doc! { "host": &self.host }, doc! {}, None)?
            .into_iter()
            .map(|run| run.run)
            .collect();
        let mut runs = from.runs(None)?;
        runs.reverse();
        let missing: Vec<Document> = runs
            .into_iter()
            .filter(|run| !present.contains(&run.run))
            .map(|mut run| {
                run.host.clone_from(&self.host);
                to_document(&RunDocument::from(run))
            })
            .collect();
        imported.runs = self.insert_all(&self.runs, missing, "add runs")?;

        let present: BTreeSet<(String, i64)> = self
            .find::<RunnerSwitchDocument>(
                &self.runner_switches,
                doc! { "host": &self.host },
                doc! {},
                None,
            )?
            .into_iter()
            .map(|switch| (switch.run, switch.time.timestamp_millis()))
            .collect();
        let mut switches = from.runner_switches(None)?;
        switches.reverse();
        let missing: Vec<Document> = switches
            .into_iter()
            .map(|mut switch| {
                switch.host.clone_from(&self.host);
                RunnerSwitchDocument::from(switch)
            })
            .filter(|document| {
                !present.contains(&(document.run.clone(), document.time.timestamp_millis()))
            })
            .map(|document| to_document(&document))
            .collect();
        imported.runner_switches =
            self.insert_all(&self.runner_switches, missing, "add runner switches")?;
        Ok(imported)
    }

    /// Inserts `documents` in order (none: no round trip); how many.
    fn insert_all(
        &self,
        collection: &Collection<Document>,
        documents: Vec<Document>,
        operation: &'static str,
    ) -> Result<usize, StateError> {
        let count = documents.len();
        if count > 0 {
            collection
                .insert_many(documents)
                .run()
                .map_err(|err| self.error(operation, &err))?;
        }
        Ok(count)
    }

    /// The unique index that keeps one record per host and pack, and the indexes of the
    /// queries of `status` and `history`; once per process.
    fn ensure_indexes(&self) -> Result<(), StateError> {
        let mut indexed = self
            .indexed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *indexed {
            return Ok(());
        }
        let unique = IndexOptions::builder().unique(true).build();
        let index = |keys: Document| IndexModel::builder().keys(keys).build();
        self.releases
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "host": 1, "pack": 1 })
                    .options(unique)
                    .build(),
            )
            .run()
            .map_err(|err| self.error("create an index", &err))?;
        self.history
            .create_indexes([
                index(doc! { "pack": 1, "time": -1 }),
                index(doc! { "host": 1, "time": -1 }),
            ])
            .run()
            .map_err(|err| self.error("create an index", &err))?;
        self.runs
            .create_index(index(doc! { "host": 1, "started_at": -1 }))
            .run()
            .map_err(|err| self.error("create an index", &err))?;
        self.runner_switches
            .create_index(index(doc! { "host": 1, "time": -1 }))
            .run()
            .map_err(|err| self.error("create an index", &err))?;
        *indexed = true;
        Ok(())
    }

    /// Upserts the record of `pack`, in `session` when given.
    fn replace_record(
        &self,
        session: Option<&mut ClientSession>,
        pack: &PackName,
        record: &PackRecord,
    ) -> Result<(), DriverError> {
        let document = to_document(&ReleasesDocument::of(
            &self.host,
            &self.layout,
            pack,
            record,
        ));
        let replace = self
            .releases
            .replace_one(doc! { "host": &self.host, "pack": pack.as_str() }, document)
            .upsert(true);
        match session {
            Some(session) => replace.session(session).run(),
            None => replace.run(),
        }
        .map(drop)
    }

    /// The record and the entry in one transaction, tried twice when the server says the
    /// failure was transient (a failover, a write conflict).
    fn save_in_transaction(
        &self,
        pack: &PackName,
        record: &PackRecord,
        entry: Option<&Document>,
    ) -> Result<(), DriverError> {
        let mut session = self.client.start_session().run()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            session.start_transaction().run()?;
            let written = (|| {
                if let Some(entry) = entry {
                    self.history
                        .insert_one(entry.clone())
                        .session(&mut session)
                        .run()?;
                }
                self.replace_record(Some(&mut session), pack, record)
            })();
            let result = match written {
                Ok(()) => session.commit_transaction().run(),
                Err(err) => {
                    // The server aborts it anyway; a failure here changes nothing.
                    let _ = session.abort_transaction().run();
                    Err(err)
                }
            };
            match result {
                Err(err) if attempt < 2 && err.contains_label(TRANSIENT_TRANSACTION_ERROR) => {}
                result => return result,
            }
        }
    }

    /// The documents of `collection` that match `filter`, in `sort` order, at most `limit`,
    /// each read as a `T`.
    fn find<T: for<'de> Deserialize<'de>>(
        &self,
        collection: &Collection<Document>,
        filter: Document,
        sort: Document,
        limit: Option<usize>,
    ) -> Result<Vec<T>, StateError> {
        let limit = limit.unwrap_or(usize::MAX);
        if limit == 0 {
            // A limit of 0 means none to the server.
            return Ok(Vec::new());
        }
        let mut find = collection.find(filter).sort(sort);
        if let Ok(limit) = i64::try_from(limit) {
            find = find.limit(limit);
        }
        let cursor = find.run().map_err(|err| self.error("read", &err))?;
        let mut out = Vec::new();
        for document in cursor {
            let document = document.map_err(|err| self.error("read", &err))?;
            let id = document.get("_id").map(ToString::to_string);
            let parsed = bson::from_document(document).map_err(|err| StateError::Document {
                hosts: self.url.hosts().to_string(),
                collection: collection.name().to_string(),
                message: format!("{} (_id {})", err, id.unwrap_or_default()),
            })?;
            out.push(parsed);
        }
        Ok(out)
    }

    fn error(&self, operation: &'static str, err: &DriverError) -> StateError {
        classify(&self.url, operation, err)
    }
}

/// Turns a driver error into a [`StateError`] that names the server's hosts and never the
/// password.
fn classify(url: &SecretUrl, operation: &'static str, err: &DriverError) -> StateError {
    let hosts = url.hosts().to_string();
    let message = url.redact(&driver_message(err));
    match err.kind.as_ref() {
        ErrorKind::ServerSelection { .. } | ErrorKind::DnsResolve { .. } | ErrorKind::Io(_) => {
            StateError::Unreachable { hosts, message }
        }
        ErrorKind::Authentication { .. } => StateError::Auth { hosts, message },
        // AuthenticationFailed, Unauthorized.
        ErrorKind::Command(command) if command.code == 18 || command.code == 13 => {
            StateError::Auth { hosts, message }
        }
        _ => StateError::Mongo {
            hosts,
            operation,
            message,
        },
    }
}

/// The driver's message without its debug dump: for a server selection timeout, what each
/// server answered.
fn driver_message(err: &DriverError) -> String {
    static SERVER_ERROR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"Address: ([^,]+), Type: \w+, Error: Kind: (.*?), labels:")
            .expect("a valid pattern")
    });
    match err.kind.as_ref() {
        ErrorKind::ServerSelection { message, .. } => {
            let servers: Vec<String> = SERVER_ERROR
                .captures_iter(message)
                .map(|c| format!("{}: {}", &c[1], &c[2]))
                .collect();
            if servers.is_empty() {
                "no server answered in time".to_string()
            } else {
                servers.join("; ")
            }
        }
        ErrorKind::Authentication { message, .. } => message.clone(),
        ErrorKind::Command(command) => format!("{} ({})", command.message, command.code_name),
        kind => kind.to_string(),
    }
}

/// Whether the server (or the driver, knowing the server) refuses transactions.
fn transactions_unsupported(err: &DriverError) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Transaction { .. } | ErrorKind::SessionsNotSupported => true,
        // IllegalOperation: "Transaction numbers are only allowed on a replica set member".
        ErrorKind::Command(command) => command.code == 20,
        _ => false,
    }
}

fn to_document<T: Serialize>(value: &T) -> Document {
    bson::to_document(value).expect("packsync's documents have string keys and i64-sized numbers")
}

fn date(time: jiff::Timestamp) -> DateTime {
    DateTime::from_millis(time.as_millisecond())
}

fn timestamp(date: DateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(date.timestamp_millis())
        .expect("BSON dates packsync wrote are in jiff's range")
}

impl StateStore for MongoStore {
    fn load(&self) -> Result<HostRecords, StateError> {
        let documents: Vec<ReleasesDocument> =
            self.find(&self.releases, doc! { "host": &self.host }, doc! {}, None)?;
        Ok(documents
            .into_iter()
            .map(|document| (document.pack.clone(), document.into_record()))
            .collect())
    }

    fn save(
        &self,
        pack: &PackName,
        record: &PackRecord,
        entry: Option<&HistoryEntry>,
    ) -> Result<(), StateError> {
        self.ensure_indexes()?;
        let entry = entry.map(|entry| to_document(&HistoryDocument::of(&self.host, entry.clone())));
        if self.transactions.load(Ordering::Relaxed) {
            match self.save_in_transaction(pack, record, entry.as_ref()) {
                Err(err) if transactions_unsupported(&err) => {
                    tracing::info!(
                        hosts = self.url.hosts(),
                        "the MongoDB server takes no transactions (not a replica set): the \
                         history entry is written before the record"
                    );
                    self.transactions.store(false, Ordering::Relaxed);
                }
                result => return result.map_err(|err| self.error("record a step", &err)),
            }
        }
        if let Some(entry) = entry {
            self.history
                .insert_one(entry)
                .run()
                .map_err(|err| self.error("add a history entry", &err))?;
        }
        self.replace_record(None, pack, record)
            .map_err(|err| self.error("write a record", &err))
    }

    fn history(
        &self,
        pack: Option<&PackName>,
        limit: Option<usize>,
    ) -> Result<Vec<HistoryEntry>, StateError> {
        let mut filter = doc! { "host": &self.host };
        if let Some(pack) = pack {
            filter.insert("pack", pack.as_str());
        }
        // `_id`s grow in insertion order, for entries of the same millisecond.
        let sort = doc! { "time": -1, "_id": -1 };
        let documents: Vec<HistoryDocument> = self.find(&self.history, filter, sort, limit)?;
        Ok(documents.into_iter().map(HistoryEntry::from).collect())
    }

    fn record_run(&self, run: &RunRecord) -> Result<(), StateError> {
        self.runs
            .insert_one(to_document(&RunDocument::from(run.clone())))
            .run()
            .map(drop)
            .map_err(|err| self.error("record the run", &err))
    }

    fn runs(&self, limit: Option<usize>) -> Result<Vec<RunRecord>, StateError> {
        let filter = doc! { "host": &self.host };
        let sort = doc! { "started_at": -1, "_id": -1 };
        let documents: Vec<RunDocument> = self.find(&self.runs, filter, sort, limit)?;
        Ok(documents.into_iter().map(RunRecord::from).collect())
    }

    fn suspensions(&self) -> Result<Vec<Suspension>, StateError> {
        let documents: Vec<SuspensionDocument> = self.find(
            &self.suspensions,
            doc! { "host": &self.host },
            doc! { "pack": 1 },
            None,
        )?;
        Ok(documents.into_iter().map(Suspension::from).collect())
    }

    fn suspend(&self, suspension: &Suspension) -> Result<(), StateError> {
        let document = SuspensionDocument::of(&self.host, suspension.clone());
        self.suspensions
            .replace_one(
                doc! { "host": &self.host, "pack": suspension.pack.as_ref().map(PackName::as_str) },
                to_document(&document),
            )
            .upsert(true)
            .run()
            .map(drop)
            .map_err(|err| self.error("suspend", &err))
    }

    fn resume(&self, pack: Option<&PackName>) -> Result<bool, StateError> {
        self.suspensions
            .delete_one(doc! { "host": &self.host, "pack": pack.map(PackName::as_str) })
            .run()
            .map(|deleted| deleted.deleted_count > 0)
            .map_err(|err| self.error("resume", &err))
    }

    fn record_runner_switch(&self, switch: &RunnerSwitch) -> Result<(), StateError> {
        self.ensure_indexes()?;
        self.runner_switches
            .insert_one(to_document(&RunnerSwitchDocument::from(switch.clone())))
            .run()
            .map(drop)
            .map_err(|err| self.error("record the runner switch", &err))
    }

    fn runner_switches(&self, limit: Option<usize>) -> Result<Vec<RunnerSwitch>, StateError> {
        let filter = doc! { "host": &self.host };
        let sort = doc! { "time": -1, "_id": -1 };
        let documents: Vec<RunnerSwitchDocument> =
            self.find(&self.runner_switches, filter, sort, limit)?;
        Ok(documents.into_iter().map(RunnerSwitch::from).collect())
    }

    fn other_hosts(&self) -> Result<BTreeMap<String, HostRecords>, StateError> {
        let documents: Vec<ReleasesDocument> = self.find(
            &self.releases,
            doc! { "host": { "$ne": &self.host } },
            doc! { "host": 1, "pack": 1 },
            None,
        )?;
        let mut hosts: BTreeMap<String, HostRecords> = BTreeMap::new();
        for document in documents {
            hosts
                .entry(document.host.clone())
                .or_default()
                .insert(document.pack.clone(), document.into_record());
        }
        Ok(hosts)
    }

    fn registered_packs(&self) -> Result<Option<BTreeMap<PackName, RegisteredPack>>, StateError> {
        let names = self
            .database
            .list_collection_names()
            .filter(doc! { "name": ST2_PACKS })
            .run()
            .map_err(|err| self.error("list collections", &err))?;
        if names.is_empty() {
            return Ok(None);
        }
        let cursor = self
            .database
            .collection::<Document>(ST2_PACKS)
            .find(doc! {})
            .projection(doc! { "ref": 1, "version": 1, "path": 1 })
            .run()
            .map_err(|err| self.error("read StackStorm's packs", &err))?;
        let mut packs = BTreeMap::new();
        for document in cursor {
            let document = document.map_err(|err| self.error("read StackStorm's packs", &err))?;
            // StackStorm's documents, not packsync's: take what can be read, skip the rest.
            let Some(name) = document
                .get_str("ref")
                .ok()
                .and_then(|r| PackName::new(r).ok())
            else {
                continue;
            };
            packs.insert(
                name,
                RegisteredPack {
                    version: document.get_str("version").unwrap_or_default().to_string(),
                    path: document.get_str("path").ok().map(str::to_string),
                },
            );
        }
        Ok(Some(packs))
    }

    fn describe(&self) -> String {
        format!(
            "MongoDB at {} (database `{}`)",
            self.url.hosts(),
            self.database.name()
        )
    }
}

/// `<prefix>releases`: the record of one pack on one host.
#[derive(Debug, Serialize, Deserialize)]
struct ReleasesDocument {
    host: String,
    pack: PackName,
    status: RecordStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<ActiveDocument>,
    /// Kept releases, newest first.
    #[serde(default)]
    releases: Vec<ReleaseRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<Failure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    adopted: Vec<Adoption>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unpurged: bool,
    updated_at: DateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RecordStatus {
    /// A release is live and the last step succeeded.
    Live,
    /// The last step failed (a release may still be live).
    Failed,
    /// Nothing live: removed (its releases stay until gc).
    Removed,
}

/// The active release, spelled out so that a query needs no lookup in `releases`.
#[derive(Debug, Serialize, Deserialize)]
struct ActiveDocument {
    id: ReleaseId,
    /// Commit, version, ref and the tree, env and config digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<Revision>,
    /// The release folder.
    release_dir: PathBuf,
    /// The link StackStorm reads the pack through.
    pack_dir: PathBuf,
    activated_at: DateTime,
}

impl ReleasesDocument {
    fn of(host: &str, layout: &Layout, pack: &PackName, record: &PackRecord) -> Self {
        let status = if record.last_failure.is_some() {
            RecordStatus::Failed
        } else if record.active.is_some() {
            RecordStatus::Live
        } else {
            RecordStatus::Removed
        };
        let active = record.active.as_ref().map(|active| ActiveDocument {
            id: active.id.clone(),
            revision: record.release(&active.id).map(|r| r.revision.clone()),
            release_dir: layout.release(pack, &active.id).dir,
            pack_dir: layout.pack_link(pack),
            activated_at: date(active.since),
        });
        Self {
            host: host.to_string(),
            pack: pack.clone(),
            status,
            active,
            releases: record.releases.clone(),
            last_error: record.last_failure.clone(),
            adopted: record.adopted.clone(),
            unpurged: record.unpurged,
            updated_at: date(model::now()),
        }
    }

    fn into_record(self) -> PackRecord {
        PackRecord {
            active: self.active.map(|active| ActiveRelease {
                id: active.id,
                since: timestamp(active.activated_at),
            }),
            releases: self.releases,
            last_failure: self.last_error,
            adopted: self.adopted,
            unpurged: self.unpurged,
        }
    }
}

/// `<prefix>history`: one change.
#[derive(Debug, Serialize, Deserialize)]
struct HistoryDocument {
    host: String,
    pack: PackName,
    action: Operation,
    from: Option<Revision>,
    to: Option<Revision>,
    release: Option<ReleaseId>,
    outcome: Outcome,
    error: Option<String>,
    duration_ms: u64,
    run: String,
    time: DateTime,
}

/// What tells two history entries apart, for an idempotent import.
type HistoryKey = (String, PackName, i64, Operation, &'static str);

impl HistoryDocument {
    /// The entry, as recorded by `host`.
    fn of(host: &str, entry: HistoryEntry) -> Self {
        Self {
            host: host.to_string(),
            pack: entry.pack,
            action: entry.operation,
            from: entry.from,
            to: entry.to,
            release: entry.release,
            outcome: entry.outcome,
            error: entry.error,
            duration_ms: entry.duration_ms,
            run: entry.run,
            time: date(entry.at),
        }
    }

    fn key(&self) -> HistoryKey {
        (
            self.run.clone(),
            self.pack.clone(),
            self.time.timestamp_millis(),
            self.action,
            self.outcome.as_str(),
        )
    }
}

impl From<HistoryDocument> for HistoryEntry {
    fn from(document: HistoryDocument) -> Self {
        Self {
            at: timestamp(document.time),
            run: document.run,
            host: document.host,
            pack: document.pack,
            operation: document.action,
            from: document.from,
            to: document.to,
            release: document.release,
            outcome: document.outcome,
            error: document.error,
            duration_ms: document.duration_ms,
        }
    }
}

/// `<prefix>runs`: one run.
/// A document of `suspensions`: one per host and pack (`pack: null` for the whole host).
#[derive(Debug, Serialize, Deserialize)]
struct SuspensionDocument {
    host: String,
    pack: Option<PackName>,
    reason: String,
    time: DateTime,
}

impl SuspensionDocument {
    fn of(host: &str, suspension: Suspension) -> Self {
        Self {
            host: host.to_string(),
            pack: suspension.pack,
            reason: suspension.reason,
            time: date(suspension.at),
        }
    }
}

impl From<SuspensionDocument> for Suspension {
    fn from(document: SuspensionDocument) -> Self {
        Self {
            pack: document.pack,
            reason: document.reason,
            at: timestamp(document.time),
        }
    }
}

/// A document of `runner_switches`: a [`RunnerSwitch`] with its time as a BSON date.
#[derive(Debug, Serialize, Deserialize)]
struct RunnerSwitchDocument {
    host: String,
    run: String,
    action: Operation,
    from: Option<Digest>,
    to: Digest,
    runners: Vec<String>,
    outcome: Outcome,
    error: Option<String>,
    duration_ms: u64,
    time: DateTime,
}

impl From<RunnerSwitch> for RunnerSwitchDocument {
    fn from(switch: RunnerSwitch) -> Self {
        Self {
            host: switch.host,
            run: switch.run,
            action: switch.operation,
            from: switch.from,
            to: switch.to,
            runners: switch.runners,
            outcome: switch.outcome,
            error: switch.error,
            duration_ms: switch.duration_ms,
            time: date(switch.at),
        }
    }
}

impl From<RunnerSwitchDocument> for RunnerSwitch {
    fn from(document: RunnerSwitchDocument) -> Self {
        Self {
            at: timestamp(document.time),
            run: document.run,
            host: document.host,
            operation: document.action,
            from: document.from,
            to: document.to,
            runners: document.runners,
            outcome: document.outcome,
            error: document.error,
            duration_ms: document.duration_ms,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RunDocument {
    host: String,
    run: String,
    started_at: DateTime,
    finished_at: DateTime,
    noop: bool,
    exit_code: u8,
    applied: BTreeMap<Operation, u64>,
    failed: BTreeMap<Operation, u64>,
    planned: u64,
    unchanged: u64,
}

impl From<RunRecord> for RunDocument {
    fn from(run: RunRecord) -> Self {
        Self {
            host: run.host,
            run: run.run,
            started_at: date(run.started_at),
            finished_at: date(run.finished_at),
            noop: run.noop,
            exit_code: run.exit_code,
            applied: run.applied,
            failed: run.failed,
            planned: run.planned,
            unchanged: run.unchanged,
        }
    }
}

impl From<RunDocument> for RunRecord {
    fn from(document: RunDocument) -> Self {
        Self {
            run: document.run,
            host: document.host,
            started_at: timestamp(document.started_at),
            finished_at: timestamp(document.finished_at),
            noop: document.noop,
            exit_code: document.exit_code,
            applied: document.applied,
            failed: document.failed,
            planned: document.planned,
            unchanged: document.unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::state::contract::{self, applied, at, live, pack, release, run_record};

    /// The server `scripts/with-mongodb` started, or a real one.
    fn test_url() -> String {
        std::env::var("PACKSYNC_TEST_MONGODB_URL").expect(
            "PACKSYNC_TEST_MONGODB_URL is not set: run the tests with `scripts/test` (or \
             `scripts/with-mongodb cargo test`), which starts a MongoDB-compatible server",
        )
    }

    fn layout() -> Layout {
        Layout {
            state_dir: "/var/lib/packsync".into(),
            packs_dir: "/opt/stackstorm/packs".into(),
            virtualenvs_dir: "/opt/stackstorm/virtualenvs".into(),
            configs_dir: "/opt/stackstorm/configs".into(),
        }
    }

    fn config(url: &str, database: &str) -> MongoConfig {
        MongoConfig {
            url: SecretUrl::new(url.to_string()),
            database: database.to_string(),
            collection_prefix: "packsync_".to_string(),
            timeout: Duration::from_secs(5),
        }
    }

    /// A database of its own for one test, dropped at the end of it.
    struct TestDatabase {
        name: String,
        client: Client,
    }

    impl TestDatabase {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "packsync_unit_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let client = Client::with_uri_str(test_url()).unwrap();
            Self { name, client }
        }

        fn store(&self, host: &str) -> MongoStore {
            MongoStore::connect(&config(&test_url(), &self.name), host, layout()).unwrap()
        }

        fn collection(&self, name: &str) -> Collection<Document> {
            self.client.database(&self.name).collection(name)
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let _ = self.client.database(&self.name).drop().run();
        }
    }

    fn with_store(test: fn(&dyn StateStore)) {
        let database = TestDatabase::new();
        test(&database.store("st2-prod-1"));
    }

    contract::state_store_contract!(with_store);

    /// The contract again, as on a server that refuses transactions: the entry goes first,
    /// then the record.
    mod without_transactions {
        use super::*;

        fn with_store(test: fn(&dyn StateStore)) {
            let database = TestDatabase::new();
            let store = database.store("st2-prod-1");
            store.transactions.store(false, Ordering::Relaxed);
            test(&store);
        }

        contract::state_store_contract!(with_store);
    }

    #[test]
    fn hosts_sharing_a_database_see_only_their_own_documents() {
        let database = TestDatabase::new();
        let one = database.store("st2-prod-1");
        let two = database.store("st2-prod-2");
        let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
        let clush_2 = release("clush", "2.0.0", "1.17.0", at(5));
        let entry_1 = applied("clush", Operation::Install, None, &clush_1);
        let mut entry_2 = applied("clush", Operation::Install, None, &clush_2);
        entry_2.host = "st2-prod-2".to_string();
        one.save(&pack("clush"), &live(vec![clush_1.clone()]), Some(&entry_1))
            .unwrap();
        two.save(&pack("clush"), &live(vec![clush_2.clone()]), Some(&entry_2))
            .unwrap();
        one.record_run(&run_record("st2-prod-1", 0)).unwrap();
        two.record_run(&run_record("st2-prod-2", 5)).unwrap();

        assert_eq!(
            one.load().unwrap()[&pack("clush")],
            live(vec![clush_1.clone()])
        );
        assert_eq!(
            two.load().unwrap()[&pack("clush")],
            live(vec![clush_2.clone()])
        );
        assert_eq!(one.history(None, None).unwrap(), [entry_1]);
        assert_eq!(two.history(None, None).unwrap(), [entry_2]);
        assert_eq!(one.runs(None).unwrap(), [run_record("st2-prod-1", 0)]);
        let others = one.other_hosts().unwrap();
        assert_eq!(others.keys().collect::<Vec<_>>(), ["st2-prod-2"]);
        assert_eq!(others["st2-prod-2"][&pack("clush")], live(vec![clush_2]));
        assert_eq!(
            two.other_hosts().unwrap()["st2-prod-1"][&pack("clush")],
            live(vec![clush_1])
        );
    }

    /// The fields operators query, as the README documents them.
    #[test]
    fn the_documents_have_the_documented_shape() {
        let database = TestDatabase::new();
        let store = database.store("st2-prod-1");
        let clush = release("clush", "1.0.0", "1.16.0", at(0));
        let entry = applied("clush", Operation::Install, None, &clush);
        store
            .save(&pack("clush"), &live(vec![clush.clone()]), Some(&entry))
            .unwrap();

        let record = database
            .collection("packsync_releases")
            .find_one(doc! { "host": "st2-prod-1", "pack": "clush" })
            .run()
            .unwrap()
            .unwrap();
        assert_eq!(record.get_str("status").unwrap(), "live");
        let active = record.get_document("active").unwrap();
        assert_eq!(active.get_str("id").unwrap(), clush.id.as_str());
        assert_eq!(active.get_datetime("activated_at").unwrap(), &date(at(0)));
        assert_eq!(
            active.get_str("release_dir").unwrap(),
            format!("/var/lib/packsync/releases/clush/{}", clush.id)
        );
        assert_eq!(
            active.get_str("pack_dir").unwrap(),
            "/opt/stackstorm/packs/clush"
        );
        let revision = active.get_document("revision").unwrap();
        assert_eq!(revision.get_str("version").unwrap(), "1.0.0");
        assert_eq!(revision.get_str("commit").unwrap(), clush.revision.commit);
        assert!(record.get_datetime("updated_at").is_ok());
        assert_eq!(record.get_array("releases").unwrap().len(), 1);

        let change = database
            .collection("packsync_history")
            .find_one(doc! {})
            .run()
            .unwrap()
            .unwrap();
        for (key, value) in [
            ("host", "st2-prod-1"),
            ("pack", "clush"),
            ("action", "install"),
            ("outcome", "applied"),
            ("run", entry.run.as_str()),
        ] {
            assert_eq!(change.get_str(key).unwrap(), value, "{key}");
        }
        assert_eq!(change.get_datetime("time").unwrap(), &date(at(0)));
        assert_eq!(change.get_i64("duration_ms").unwrap(), 8_412);

        let indexes = database
            .collection("packsync_releases")
            .list_index_names()
            .run()
            .unwrap();
        assert!(
            indexes.contains(&"host_1_pack_1".to_string()),
            "{indexes:?}"
        );
    }

    /// The record and its entry go in one transaction: when the entry cannot be written, the
    /// record stays as it was.
    #[test]
    fn a_step_whose_history_entry_fails_leaves_the_record_as_it_was() {
        let database = TestDatabase::new();
        let store = database.store("st2-prod-1");
        let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
        let clush_2 = release("clush", "1.1.0", "1.16.0", at(10));
        let entry = applied("clush", Operation::Install, None, &clush_1);
        store
            .save(&pack("clush"), &live(vec![clush_1.clone()]), Some(&entry))
            .unwrap();
        // A second entry with the same `run` is refused by this index.
        database
            .collection("packsync_history")
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "run": 1 })
                    .options(IndexOptions::builder().unique(true).build())
                    .build(),
            )
            .run()
            .unwrap();
        let mut upgrade = applied("clush", Operation::Upgrade, Some(&clush_1), &clush_2);
        upgrade.run.clone_from(&entry.run);
        let record_2 = live(vec![clush_2, clush_1.clone()]);
        store
            .save(&pack("clush"), &record_2, Some(&upgrade))
            .unwrap_err();
        assert_eq!(
            store.load().unwrap()[&pack("clush")],
            live(vec![clush_1]),
            "the record is not switched without its entry"
        );
        assert_eq!(store.history(None, None).unwrap(), [entry]);
    }

    #[test]
    fn registered_packs_come_from_stackstorms_pack_d_b() {
        let database = TestDatabase::new();
        let store = database.store("st2-prod-1");
        assert_eq!(store.registered_packs().unwrap(), None);
        database
            .collection(ST2_PACKS)
            .insert_many([
                doc! { "ref": "clush", "name": "clush", "version": "1.8.1",
                "path": "/opt/stackstorm/packs/clush", "uid": "pack:clush" },
                doc! { "ref": "core", "name": "core", "version": "3.8.1" },
                doc! { "ref": "Not A Pack", "version": "1" },
            ])
            .run()
            .unwrap();
        let registered = store.registered_packs().unwrap().unwrap();
        assert_eq!(
            registered,
            BTreeMap::from([
                (
                    pack("clush"),
                    RegisteredPack {
                        version: "1.8.1".to_string(),
                        path: Some("/opt/stackstorm/packs/clush".to_string()),
                    }
                ),
                (
                    pack("core"),
                    RegisteredPack {
                        version: "3.8.1".to_string(),
                        path: None,
                    }
                ),
            ])
        );
    }

    #[test]
    fn import_copies_the_file_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStore::new(dir.path());
        let clush_1 = release("clush", "1.0.0", "1.16.0", at(0));
        let clush_2 = release("clush", "1.1.0", "1.16.0", at(10));
        let slurm = release("slurm", "0.3.0", "1.16.0", at(1));
        let entries = [
            applied("clush", Operation::Install, None, &clush_1),
            applied("slurm", Operation::Install, None, &slurm),
            applied("clush", Operation::Upgrade, Some(&clush_1), &clush_2),
        ];
        file.save(
            &pack("clush"),
            &live(vec![clush_1.clone()]),
            Some(&entries[0]),
        )
        .unwrap();
        file.save(&pack("slurm"), &live(vec![slurm]), Some(&entries[1]))
            .unwrap();
        file.save(
            &pack("clush"),
            &live(vec![clush_2, clush_1]),
            Some(&entries[2]),
        )
        .unwrap();
        file.record_run(&run_record("st2-prod-1", 0)).unwrap();
        file.record_run(&run_record("st2-prod-1", 10)).unwrap();
        let switch = RunnerSwitch {
            at: at(3),
            run: "run-3".into(),
            host: "st2-prod-1".into(),
            operation: Operation::Install,
            from: None,
            to: Digest::sha256(b"set"),
            runners: vec!["clush-runner 1.2.0".into()],
            outcome: Outcome::Applied,
            error: None,
            duration_ms: 800,
        };
        file.record_runner_switch(&switch).unwrap();

        let database = TestDatabase::new();
        let store = database.store("st2-prod-1");
        let imported = store.import(&file).unwrap();
        assert_eq!(
            imported,
            Imported {
                records: 2,
                history: 3,
                runs: 2,
                runner_switches: 1,
            }
        );
        assert_eq!(store.load().unwrap(), file.load().unwrap());
        assert_eq!(
            store.history(None, None).unwrap(),
            file.history(None, None).unwrap()
        );
        assert_eq!(store.runs(None).unwrap(), file.runs(None).unwrap());

        let again = store.import(&file).unwrap();
        assert_eq!(
            again,
            Imported {
                records: 2,
                history: 0,
                runs: 0,
                runner_switches: 0,
            }
        );
        assert_eq!(store.history(None, None).unwrap().len(), 3);
        assert_eq!(store.runner_switches(None).unwrap(), [switch]);
        assert_eq!(store.runs(None).unwrap().len(), 2);
    }

    #[test]
    fn an_unreachable_server_is_named_and_the_password_is_not() {
        let mut config = config("mongodb://packsync:hunter2@127.0.0.1:1/", "st2");
        config.timeout = Duration::from_millis(300);
        let store = MongoStore::connect(&config, "st2-prod-1", layout()).unwrap();
        let err = store.load().unwrap_err();
        assert!(matches!(err, StateError::Unreachable { .. }), "{err:?}");
        let shown = format!("{err} {err:?} {}", store.describe());
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
