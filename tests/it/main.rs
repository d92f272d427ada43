//! The one integration test binary: real Git repos, real wheels, the real `packsync` binary.

mod chart;
mod cli;
mod common;
mod mirror;
mod module_graph;
mod quickstart;
mod resolve;
mod source;
