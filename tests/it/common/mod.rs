//! Shared fixtures: Git repos, wheels, sites.

pub(crate) mod git;
pub(crate) mod mongo;
pub(crate) mod site;
pub(crate) mod wheels;
