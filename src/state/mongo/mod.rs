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
    FileStore, HistoryEntry, HostRecords, PackRecord, RegisteredPack, RunRecord, RunnerSwitch,
    StateError, StateStore,
};
use crate::config::{MongoConfig, SecretUrl};
use crate::model::{PackName, Suspension};
use crate::store::Layout;

mod documents;

use documents::{
    HistoryDocument, HistoryKey, ReleasesDocument, RunDocument, RunnerSwitchDocument,
    SuspensionDocument,
};

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

/// A client of the server of `config` and its database. Nothing is sent yet: the first
/// operation connects, and fails after `config.timeout` when no server answers.
pub fn open_database(config: &MongoConfig) -> Result<(Client, Database), StateError> {
    let url = &config.url;
    let mut options = ClientOptions::parse(url.expose())
        .run()
        .map_err(|err| classify(url, "read its URL", &err))?;
    options.app_name = Some(format!("packsync {}", env!("CARGO_PKG_VERSION")));
    options.server_selection_timeout = Some(config.timeout);
    options.connect_timeout = Some(config.timeout);
    let client = Client::with_options(options).map_err(|err| classify(url, "connect", &err))?;
    let database = client.database(&config.database);
    Ok((client, database))
}

/// Turns a driver error of the server at `url` into a [`StateError`], as the store does.
pub fn driver_error(url: &SecretUrl, operation: &'static str, err: &DriverError) -> StateError {
    classify(url, operation, err)
}

impl MongoStore {
    /// A client for `config`, for `host`, whose releases are laid out as `layout` says.
    /// Nothing is sent yet: the first operation connects, and fails after `config.timeout`
    /// when no server answers.
    pub fn connect(config: &MongoConfig, host: &str, layout: Layout) -> Result<Self, StateError> {
        let url = config.url.clone();
        let (client, database) = open_database(config)?;
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

#[cfg(test)]
mod tests;
