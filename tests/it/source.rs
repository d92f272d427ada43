//! Tests of the source module against real Git repos.
