//! What the agent tells the rest of the site: one JSON message per outcome on a RabbitMQ topic
//! exchange (`[messaging]`), routing key `packsync.<host>.<pack>.<outcome>`, and
//! `packsync.<host>.run.completed` after every run.
//!
//! Never in the way of a switch: runs only queue events (bounded; when full the oldest is
//! dropped with a counted warning), and one task publishes them with publisher confirms,
//! reconnecting with backoff while the broker is away. An event leaves the queue only once the
//! broker confirmed it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::MessagingConfig;

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One message: where it goes and what it says.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub(super) routing_key: String,
    pub(super) body: serde_json::Value,
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
    pending: VecDeque<Event>,
    dropped: u64,
}

/// The bounded queue between the runs and the publisher.
#[derive(Debug, Clone)]
pub(super) struct Events {
    queue: Arc<Mutex<Queue>>,
    limit: usize,
    ready: Arc<Notify>,
}

impl Events {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            queue: Arc::default(),
            limit: limit.max(1),
            ready: Arc::default(),
        }
    }

    /// Queues `events`; when the queue is full, the oldest are dropped and counted.
    pub(super) fn push(&self, events: impl IntoIterator<Item = Event>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            if queue.pending.len() >= self.limit {
                queue.pending.pop_front();
                queue.dropped += 1;
                tracing::warn!(
                    dropped = queue.dropped,
                    limit = self.limit,
                    "event queue full: the oldest event is dropped"
                );
            }
            queue.pending.push_back(event);
        }
        self.ready.notify_one();
    }

    /// Events waiting for the broker, and events dropped since the start.
    pub(super) fn counts(&self) -> (usize, u64) {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        (queue.pending.len(), queue.dropped)
    }

    fn front(&self) -> Option<Event> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.pending.front().cloned()
    }

    fn pop_front(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.pending.pop_front();
    }
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
        let Some(event) = events.front() else {
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
                        .with_delivery_mode(2),
                )
                .await?
                .await
        }
        .await;
        match confirmed {
            Ok(confirmation) if confirmation.is_ack() => events.pop_front(),
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
        let events = Events::new(2);
        let event = |n: u32| Event::new("node1", "clush", "installed", &n);
        events.push([event(1), event(2)]);
        assert_eq!(events.counts(), (2, 0));
        events.push([event(3)]);
        assert_eq!(events.counts(), (2, 1));
        assert_eq!(events.front().unwrap().body, serde_json::json!(2));
        events.pop_front();
        assert_eq!(events.front().unwrap().body, serde_json::json!(3));
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
}
