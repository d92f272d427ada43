//! packsync deploys StackStorm packs from local Git repos the GitOps way.
//!
//! The pipeline, one way only:
//! `config` (site config) -> `desired` (Git sources, pack checks, wheel mirror) ->
//! `plan` (pure diff against `installed`) -> execute -> record.
//!
//! # Layout
//! The modules import each other as a tree (no cycle; `tests/it/module_graph.rs` checks it):
//! `plan` imports only `model`, `diagnostics` only `model` and `plan`, `cli` sits on top.
//! - [`model`]: pure types shared by every layer (pack names, digests, revisions, plans).
//! - [`config`]: the site config file, parsed and validated with `file:line:col` errors.
//! - [`source`]: Git access through git2 (local repos only): refs, trees, files.
//! - [`pack`]: checks of what a pack carries: `pack.yaml`, `config.schema.yaml`, requirements.
//! - [`mirror`]: index of the wheel mirror folder and requirement checks against it.
//! - [`python`]: identity of the interpreter pack virtualenvs are built with.
//! - [`state`]: the installed-state store (embedded file store) and what disk says is live.
//! - [`store`]: releases and virtualenvs on disk: staging, sealing, crash leftovers, gc.
//! - [`env`](mod@env): pack virtualenvs built offline from the mirror, shared by env digest, verified
//!   against their pins before their completion record is written.
//! - [`children`]: the installers packsync starts, tied to its life and ended after a crash.
//! - [`activate`]: the atomic switch of `current/<pack>` and the links StackStorm reads.
//! - [`engine`]: StackStorm hooks (`test`, `register`, `unregister`) as configured commands.
//! - [`lock`]: one run at a time per `state_dir`.
//! - [`unit`]: the one way a pack or a runner set goes live (stage, gate, switch, register,
//!   settle; back to what was live when registration fails), each kind a [`unit::Unit`].
//! - [`runners`]: StackStorm runners as immutable runner sets, a [`unit::Unit`] like a pack.
//! - [`execute`]: plans and carries out a plan, pack by pack, each pack a [`unit::Unit`].
//! - [`fleet`]: the hosts of one StackStorm site deploying as one, through a rollout document
//!   and its lease in the MongoDB they share.
//! - [`agent`]: the long-running reconciler: watches, schedules, serves `/metrics`.
//! - [`fsx`]: crash-safe filesystem steps (atomic writes, link switches, read-only trees).
//! - [`desired`]: reads config, sources and mirror into the desired state.
//! - [`plan`]: the pure function `desired x installed -> Plan`.
//! - [`diagnostics`]: error reports with causes, file positions and hints; each module's error
//!   says what it knows ([`diagnostics::Diagnose`]) and which error of another module it wraps.
//! - [`yaml`]: YAML as StackStorm reads it (PyYAML `safe_load`, YAML 1.1), with limits.
//! - [`cli`]: the command-line interface (argument parsing, printing, exit codes).

pub mod activate;
pub mod agent;
pub mod children;
pub mod cli;
pub mod config;
pub mod desired;
pub mod diagnostics;
pub mod engine;
pub mod env;
pub mod execute;
pub mod fleet;
pub mod fsx;
pub mod lock;
pub mod mirror;
pub mod model;
pub mod pack;
pub mod plan;
pub mod python;
pub mod runners;
pub mod source;
pub mod state;
pub mod store;
pub mod unit;
pub mod verify;
pub mod yaml;
