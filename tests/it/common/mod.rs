//! Shared fixtures: Git repos, wheels, sites.

pub(crate) mod git;
pub(crate) mod wheels;
