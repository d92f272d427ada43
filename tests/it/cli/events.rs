//! The agent's events on the real RabbitMQ of this machine (127.0.0.1:5672, guest/guest).

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};

use super::agent::{Agent, live_version};
use crate::common::site::{PackEntry, TestSite, pack_yaml};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A queue bound to `packsync.#` of `exchange`, read with `basic_get`.
struct Consumer {
    runtime: tokio::runtime::Runtime,
    channel: lapin::Channel,
    queue: String,
    _connection: Connection,
}

impl Consumer {
    fn bind(exchange: &str) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let (connection, channel, queue) = runtime.block_on(async {
            let connection = Connection::connect(BROKER, ConnectionProperties::default())
                .await
                .expect(
                    "RabbitMQ answers on 127.0.0.1:5672 (scripts/test starts it when it is not \
                     running)",
                );
            let channel = connection.create_channel().await.expect("a channel");
            channel
                .exchange_declare(
                    exchange.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("the exchange is declared");
            let queue = channel
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("a queue");
            let name = queue.name().to_string();
            channel
                .queue_bind(
                    name.as_str().into(),
                    exchange.into(),
                    "packsync.#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("the queue is bound");
            (connection, channel, name)
        });
        Self {
            runtime,
            channel,
            queue,
            _connection: connection,
        }
    }

    /// The messages received until one has `routing_key` (30 s at most): routing keys and
    /// bodies.
    fn until(&self, routing_key: &str) -> Vec<(String, serde_json::Value)> {
        self.until_count(routing_key, 1)
    }

    /// The messages received until `count` have `routing_key` (30 s at most).
    fn until_count(&self, routing_key: &str, count: usize) -> Vec<(String, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut received = Vec::new();
        while received
            .iter()
            .filter(|(key, _)| key == routing_key)
            .count()
            < count
        {
            assert!(
                Instant::now() < deadline,
                "no {routing_key} within 30 s; received {received:#?}"
            );
            let message = self.runtime.block_on(
                self.channel
                    .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true }),
            );
            match message.expect("basic_get") {
                Some(message) => received.push((
                    message.delivery.routing_key.to_string(),
                    serde_json::from_slice(&message.delivery.data).expect("a JSON body"),
                )),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        received
    }
}

fn exchange_name() -> String {
    format!(
        "packsync_test_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    )
}

#[test]
fn every_outcome_is_published_with_its_routing_key() {
    let exchange = exchange_name();
    let consumer = Consumer::bind(&exchange);
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .agent_line("host = \"st2.node1\"")
        .section(&format!(
            "[watch]\ndebounce = \"200ms\"\n[messaging]\nurl = \"{BROKER}\"\nexchange = \"{exchange}\"\n"
        ));
    let agent = Agent::start(&site);
    let first = consumer.until("packsync.st2_node1.run.completed");
    let (_, installed) = first
        .iter()
        .find(|(key, _)| key == "packsync.st2_node1.clush.installed")
        .expect("an installed event");
    assert_eq!(installed["host"], "st2.node1");
    assert_eq!(installed["pack"], "clush");
    assert_eq!(installed["action"], "install");
    assert_eq!(installed["to"], "1.0.0");
    assert_eq!(installed["outcome"], "installed");
    assert!(
        installed["run"]
            .as_str()
            .is_some_and(|run| run.ends_with("-1"))
    );

    clush.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    clush.commit("clush 1.1.0");
    let second = consumer.until("packsync.st2_node1.clush.upgraded");
    let (_, upgraded) = second.last().unwrap();
    assert_eq!(
        (&upgraded["from"], &upgraded["to"]),
        (&"1.0.0".into(), &"1.1.0".into())
    );
    let completed = consumer.until("packsync.st2_node1.run.completed");
    let (_, completed) = completed.last().unwrap();
    assert_eq!(completed["exit_code"], 2);
    assert_eq!(completed["applied"]["upgrade"], 1);
    drop(agent);
}

/// A stand-in for the broker on a port of its own: forwards every connection to RabbitMQ until
/// stopped, when it closes them all, as a broker going down does.
struct Proxy {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut sockets = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                client.set_nonblocking(false).expect("a blocking socket");
                let Ok(broker) = TcpStream::connect("127.0.0.1:5672") else {
                    continue;
                };
                sockets.extend([
                    client.try_clone().expect("the socket clones"),
                    broker.try_clone().expect("the socket clones"),
                ]);
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("the socket clones"),
                        broker.try_clone().expect("the socket clones"),
                    ),
                    (broker, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
            for socket in sockets {
                let _ = socket.shutdown(std::net::Shutdown::Both);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the proxy thread ends");
        }
    }
}

/// A site of `host` with clush, whose `[messaging]` names a port no broker listens on (yet),
/// and a consumer of its exchange on the real broker.
struct Outage {
    consumer: Consumer,
    port: u16,
    site: TestSite,
    clush: crate::common::git::GitRepo,
}

impl Outage {
    fn new(host: &str) -> Self {
        let exchange = exchange_name();
        let consumer = Consumer::bind(&exchange);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut site = TestSite::new();
        let clush = site.pack_repo("clush", "1.0.0");
        site.add_pack(PackEntry::new("clush", clush.path()))
            .agent_line(&format!("host = \"{host}\""))
            .section(&format!(
                "[watch]\ndebounce = \"200ms\"\n[messaging]\nurl = \"amqp://guest:guest@127.0.0.1:{port}/%2f\"\nexchange = \"{exchange}\"\n"
            ));
        Self {
            consumer,
            port,
            site,
            clush,
        }
    }

    /// An agent that deployed clush 1.0.0 and found no broker.
    fn deployed(&self) -> Agent {
        let agent = Agent::start(&self.site);
        agent.wait_for("clush live", || {
            live_version(&self.site, "clush").as_deref() == Some("1.0.0")
        });
        agent.wait_for("the broker to be missed", || {
            agent
                .log()
                .contains("cannot reach the broker; events wait in the queue")
        });
        agent
    }
}

#[test]
fn events_wait_for_a_broker_that_is_away_and_the_switch_does_not() {
    let outage = Outage::new("node2");
    // Deployed while the broker is away.
    let agent = outage.deployed();
    let (consumer, port, site, clush) =
        (&outage.consumer, outage.port, &outage.site, &outage.clush);
    assert!(
        !agent.log().contains("guest:guest"),
        "no password in the log"
    );
    // The broker is back: the queued events go out.
    let proxy = Proxy::start(port);
    let received = consumer.until("packsync.node2.run.completed");
    assert!(
        received
            .iter()
            .any(|(key, _)| key == "packsync.node2.clush.installed"),
        "{received:#?}"
    );

    // Gone again while the agent runs: the next change still goes live, its events wait.
    proxy.stop();
    clush.write("pack.yaml", pack_yaml("clush", "1.1.0", ""));
    clush.commit("clush 1.1.0");
    agent.wait_for("clush 1.1.0 live", || {
        live_version(site, "clush").as_deref() == Some("1.1.0")
    });
    agent.wait_for("the broker to be lost", || {
        agent
            .log()
            .contains("lost the broker; events wait in the queue")
    });
    let _proxy = Proxy::start(port);
    let received = consumer.until("packsync.node2.clush.upgraded");
    let (_, upgraded) = received.last().unwrap();
    assert_eq!(upgraded["to"], "1.1.0");
}

/// Issue 21: events queued while the broker is away survive the agent killed with SIGKILL:
/// the next agent sends them once the broker is back, each once, before its own.
#[test]
fn issue_21_events_queued_in_an_outage_outlive_a_killed_agent_and_go_out_once() {
    let outage = Outage::new("node3");
    let (consumer, port, site) = (&outage.consumer, outage.port, &outage.site);
    let agent = outage.deployed();
    // The run's events are queued once it is recorded, a moment after the switch.
    let outbox = site.state_dir().join("outbox.jsonl");
    agent.wait_for("the run's events in the outbox", || {
        fs_err::read_to_string(&outbox).is_ok_and(|journal| journal.contains("run.completed"))
    });
    drop(agent); // SIGKILL
    let journal = fs_err::read_to_string(&outbox).unwrap();
    assert!(
        journal.contains("packsync.node3.clush.installed"),
        "{journal}"
    );

    let _proxy = Proxy::start(port);
    let agent = Agent::start(site);
    // The killed agent's run, then the new agent's own.
    let received = consumer.until_count("packsync.node3.run.completed", 2);
    let keys: Vec<&str> = received.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "packsync.node3.clush.installed",
            "packsync.node3.run.completed",
            "packsync.node3.run.completed"
        ],
        "{}",
        agent.log()
    );
    assert!(
        agent
            .log()
            .contains("events an earlier agent did not send are queued again")
    );
    agent.wait_for("the outbox to be emptied", || {
        fs_err::read_to_string(site.state_dir().join("outbox.jsonl")).is_ok_and(|j| j.is_empty())
    });
}

/// Issue 21: a release the agent's verification finds tampered is announced before it is built
/// again from Git.
#[test]
fn issue_21_a_tampered_release_is_announced() {
    let exchange = exchange_name();
    let consumer = Consumer::bind(&exchange);
    let mut site = TestSite::new();
    let clush = site.pack_repo("clush", "1.0.0");
    site.add_pack(PackEntry::new("clush", clush.path()))
        .agent_line("host = \"st2.node1\"")
        .agent_line("verify_every = \"1s\"")
        .section(&format!(
            "[messaging]\nurl = \"{BROKER}\"\nexchange = \"{exchange}\"\n"
        ));
    let agent = Agent::start(&site);
    consumer.until("packsync.st2_node1.clush.installed");
    let pack_yaml = site.state_dir().join("current/clush/pack/clush/pack.yaml");
    fs_err::write(&pack_yaml, "name: intruder\n").unwrap();
    let events = consumer.until("packsync.st2_node1.clush.tampered");
    let (_, tampered) = events.last().unwrap();
    assert_eq!(tampered["host"], "st2.node1");
    assert_eq!(tampered["pack"], "clush");
    assert_eq!(tampered["tampered"], true);
    assert_eq!(tampered["files"]["changed"][0], "pack.yaml");
    consumer.until("packsync.st2_node1.clush.rebuilt");
    drop(agent);
}
