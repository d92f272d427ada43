//! Shared fixtures: Git repos, wheels, sites.
