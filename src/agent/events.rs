//! What the agent tells the rest of the site: one JSON message per outcome on a RabbitMQ topic
//! exchange (`[messaging]`), routing key `packsync.<host>.<pack>.<outcome>`, and
//! `packsync.<host>.run.completed` after every run.
//!
//! Never in the way of a switch: runs only queue events (bounded; when full the oldest is
//! dropped with a counted warning), and one task publishes them with publisher confirms,
//! reconnecting with backoff while the broker is away. An event leaves the queue only once the
//! broker confirmed it.
//!
//! The queue is on disk too, so that an agent restarted while the broker is away loses none:
//! each event is appended to `state_dir/outbox.jsonl` (fsync'd) with a sequence number before
//! `push` returns, and `state_dir/outbox.sent` holds the number of the last one confirmed (or
//! dropped). A new agent queues what the journal holds past it, in order; the journal is
//! emptied whenever everything in it is sent, and compacted when it grows past twice the
//! queue's limit. Each message carries its number as its `message_id`: a consumer can tell a
//! message sent again (confirmed by the broker, the agent killed before it wrote so).

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::config::MessagingConfig;
use crate::fsx;

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One message: where it goes and what it says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Event {
    pub(super) routing_key: String,
    pub(super) body: serde_json::Value,
}

/// An event as the outbox journal holds it: one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Numbered {
    seq: u64,
    #[serde(flatten)]
    event: Event,
}

impl Event {
    /// `packsync.<host>.<subject>.<outcome>` with `body` serialised.
    pub(super) fn new(host: &str, subject: &str, outcome: &str, body: &impl Serialize) -> Self {
        Self {
            routing_key: format!("packsync.{}.{}.{outcome}", word(host), word(subject)),
            body: serde_json::to_value(body).expect("events serialise to JSON"),
        }
    }
}

/// A routing key word: AMQP topic words are separated by dots.
fn word(text: &str) -> String {
    text.replace('.', "_")
}

#[derive(Debug, Default)]
struct Queue {
    pending: VecDeque<Numbered>,
    dropped: u64,
    /// The number the next event gets.
    next: u64,
    /// Lines in the journal, sent or not.
    journal_lines: usize,
}

/// The bounded queue between the runs and the publisher, kept on disk in `outbox`.
#[derive(Debug, Clone)]
pub(super) struct Events {
    queue: Arc<Mutex<Queue>>,
    limit: usize,
    ready: Arc<Notify>,
    outbox: Arc<Outbox>,
}

/// The outbox's two files.
#[derive(Debug)]
struct Outbox {
    journal: PathBuf,
    sent: PathBuf,
}

impl Events {
    /// The queue of the agent whose state is in `state_dir`, with what an earlier agent left
    /// unsent.
    pub(super) fn new(limit: usize, state_dir: &Path) -> Self {
        let outbox = Outbox {
            journal: state_dir.join("outbox.jsonl"),
            sent: state_dir.join("outbox.sent"),
        };
        let events = Self {
            queue: Arc::default(),
            limit: limit.max(1),
            ready: Arc::default(),
            outbox: Arc::new(outbox),
        };
        let (sent, unsent, lines) = events.outbox.read();
        {
            let mut queue = events.lock();
            queue.next = unsent.last().map_or(sent, |event| event.seq) + 1;
            queue.journal_lines = lines;
            if !unsent.is_empty() {
                tracing::info!(
                    events = unsent.len(),
                    "events an earlier agent did not send are queued again"
                );
            }
            for event in unsent {
                events.enqueue(&mut queue, event);
            }
        }
        events
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `events`, on disk first; when the queue is full, the oldest are dropped and
    /// counted.
    pub(super) fn push(&self, events: impl IntoIterator<Item = Event>) {
        let mut queue = self.lock();
        let numbered: Vec<Numbered> = events
            .into_iter()
            .map(|event| {
                let seq = queue.next;
                queue.next += 1;
                Numbered { seq, event }
            })
            .collect();
        if let Err(err) = self.outbox.append(&numbered) {
            tracing::warn!(journal = %self.outbox.journal.display(), error = %err, "events not written to the outbox: a restart before they are sent loses them");
        }
        queue.journal_lines += numbered.len();
        for event in numbered {
            self.enqueue(&mut queue, event);
        }
        if queue.journal_lines > 2 * self.limit {
            self.compact(&queue);
            queue.journal_lines = queue.pending.len();
        }
        drop(queue);
        self.ready.notify_one();
    }

    /// Adds `event` at the back of `queue`, dropping the oldest (marked sent) when full.
    fn enqueue(&self, queue: &mut Queue, event: Numbered) {
        if queue.pending.len() >= self.limit
            && let Some(oldest) = queue.pending.pop_front()
        {
            queue.dropped += 1;
            tracing::warn!(
                dropped = queue.dropped,
                limit = self.limit,
                "event queue full: the oldest event is dropped"
            );
            self.mark_sent(oldest.seq);
        }
        queue.pending.push_back(event);
    }

    /// Events waiting for the broker, and events dropped since the start.
    pub(super) fn counts(&self) -> (usize, u64) {
        let queue = self.lock();
        (queue.pending.len(), queue.dropped)
    }

    fn front(&self) -> Option<Numbered> {
        self.lock().pending.front().cloned()
    }

    /// The event `seq` was confirmed: it leaves the queue (unless a full queue dropped it
    /// meanwhile), and the journal once that is empty.
    fn confirmed(&self, seq: u64) {
        let mut queue = self.lock();
        if queue.pending.front().is_some_and(|front| front.seq == seq) {
            queue.pending.pop_front();
            self.mark_sent(seq);
        }
        if queue.pending.is_empty() && queue.journal_lines > 0 {
            self.compact(&queue);
            queue.journal_lines = 0;
        }
    }

    fn mark_sent(&self, seq: u64) {
        if let Err(err) = fsx::write_atomic(&self.outbox.sent, format!("{seq}\n").as_bytes()) {
            tracing::warn!(file = %self.outbox.sent.display(), error = %err, "the last event sent is not recorded: a restart sends it again");
        }
    }

    /// Rewrites the journal with the events still queued.
    fn compact(&self, queue: &Queue) {
        if let Err(err) = fsx::write_atomic(&self.outbox.journal, &journal_lines(&queue.pending)) {
            tracing::warn!(journal = %self.outbox.journal.display(), error = %err, "the outbox is not compacted");
        }
    }
}

impl Outbox {
    /// The number of the last event sent, the events after it, and the journal's line count;
    /// what cannot be read is logged and left out.
    fn read(&self) -> (u64, Vec<Numbered>, usize) {
        let sent = fs_err::read_to_string(&self.sent)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0);
        let text = match fs_err::read_to_string(&self.journal) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                tracing::warn!(error = %err, "the outbox cannot be read: its events are lost");
                String::new()
            }
        };
        let mut lines = 0;
        let mut unsent = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            lines += 1;
            match serde_json::from_str::<Numbered>(line) {
                Ok(event) if event.seq > sent => unsent.push(event),
                Ok(_) => {}
                // A line cut short by a crash in the middle of an append.
                Err(err) => {
                    tracing::warn!(journal = %self.journal.display(), error = %err, "an outbox line cannot be read and is left out");
                }
            }
        }
        (sent, unsent, lines)
    }

    /// Appends `events` to the journal, on disk when it returns.
    fn append(&self, events: &[Numbered]) -> std::io::Result<()> {
        let mut journal = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.journal)?;
        journal.write_all(&journal_lines(events))?;
        journal.sync_data()
    }
}

/// `events` as journal lines, one JSON object each.
fn journal_lines<'a>(events: impl IntoIterator<Item = &'a Numbered>) -> Vec<u8> {
    let mut text = Vec::new();
    for event in events {
        text.extend(serde_json::to_vec(event).expect("events serialise to JSON"));
        text.push(b'\n');
    }
    text
}

/// Publishes the queued events for as long as the agent runs.
pub(super) async fn publish(config: MessagingConfig, events: Events) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match connect(&config).await {
            Ok((connection, channel)) => {
                tracing::info!(broker = %config.url, exchange = %config.exchange, "connected to the broker");
                backoff = Duration::from_secs(1);
                let error = drain(&channel, &config, &events).await;
                tracing::warn!(
                    broker = %config.url,
                    error = %config.url.redact(&error.to_string()),
                    "lost the broker; events wait in the queue"
                );
                drop(connection);
            }
            Err(error) => {
                tracing::warn!(
                    broker = %config.url,
                    error = %config.url.redact(&error.to_string()),
                    retry_in = ?backoff,
                    "cannot reach the broker; events wait in the queue"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(config: &MessagingConfig) -> Result<(Connection, lapin::Channel), lapin::Error> {
    let connection =
        Connection::connect(config.url.expose(), ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

/// Publishes until the queue is empty, then waits for more; returns what broke the channel.
async fn drain(
    channel: &lapin::Channel,
    config: &MessagingConfig,
    events: &Events,
) -> lapin::Error {
    loop {
        let ready = events.ready.notified();
        let Some(Numbered { seq, event }) = events.front() else {
            ready.await;
            continue;
        };
        let payload = serde_json::to_vec(&event.body).expect("events serialise to JSON");
        let confirmed = async {
            channel
                .basic_publish(
                    config.exchange.as_str().into(),
                    event.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default()
                        .with_content_type("application/json".into())
                        .with_message_id(seq.to_string().as_str().into())
                        .with_delivery_mode(2),
                )
                .await?
                .await
        }
        .await;
        match confirmed {
            Ok(confirmation) if confirmation.is_ack() => events.confirmed(seq),
            Ok(_) => {
                tracing::warn!(routing_key = %event.routing_key, "the broker refused an event; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::new(2, dir.path());
        let event = |n: u32| Event::new("node1", "clush", "installed", &n);
        events.push([event(1), event(2)]);
        assert_eq!(events.counts(), (2, 0));
        events.push([event(3)]);
        assert_eq!(events.counts(), (2, 1));
        let front = events.front().unwrap();
        assert_eq!(front.event.body, serde_json::json!(2));
        events.confirmed(front.seq);
        assert_eq!(events.front().unwrap().event.body, serde_json::json!(3));
        // Confirmed after a full queue dropped it: nothing else leaves.
        events.confirmed(front.seq);
        assert_eq!(events.counts(), (1, 1));
        assert_eq!(
            event(0).routing_key,
            "packsync.node1.clush.installed",
            "one word per part"
        );
        assert_eq!(
            Event::new("st2.node1", "run", "completed", &0).routing_key,
            "packsync.st2_node1.run.completed"
        );
    }

    /// Issue 21: what a stopped agent had not sent is queued again by the next, in order,
    /// without what was sent or dropped; the journal empties once everything is sent.
    #[test]
    fn the_outbox_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let event = |n: u32| Event::new("node1", "clush", "installed", &n);
        let first = Events::new(3, dir.path());
        first.push([event(1), event(2)]);
        first.confirmed(1);
        first.push([event(3), event(4), event(5)]);
        assert_eq!(first.counts(), (3, 1), "2 was dropped");
        drop(first);

        let second = Events::new(3, dir.path());
        let queued: Vec<(u64, serde_json::Value)> = second
            .lock()
            .pending
            .iter()
            .map(|numbered| (numbered.seq, numbered.event.body.clone()))
            .collect();
        assert_eq!(
            queued,
            [
                (3, serde_json::json!(3)),
                (4, serde_json::json!(4)),
                (5, serde_json::json!(5))
            ]
        );
        second.push([event(6)]);
        assert_eq!(second.front().unwrap().seq, 4, "the queue holds 3");
        for seq in 4..=6 {
            second.confirmed(seq);
        }
        assert_eq!(second.counts().0, 0);
        assert_eq!(
            fs_err::read_to_string(dir.path().join("outbox.jsonl")).unwrap(),
            ""
        );
        assert_eq!(
            fs_err::read_to_string(dir.path().join("outbox.sent")).unwrap(),
            "6\n"
        );
        drop(second);
        let third = Events::new(3, dir.path());
        assert_eq!(third.counts(), (0, 0));
        third.push([event(7)]);
        assert_eq!(third.front().unwrap().seq, 7, "numbers go on");

        // A line cut short by a crash is left out.
        let mut journal = fs_err::OpenOptions::new()
            .append(true)
            .open(dir.path().join("outbox.jsonl"))
            .unwrap();
        journal.write_all(b"{\"seq\": 8, \"routing").unwrap();
        drop(third);
        assert_eq!(Events::new(3, dir.path()).counts(), (1, 0));
    }
}
