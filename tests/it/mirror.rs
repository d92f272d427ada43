//! Tests of the mirror module against a real wheel folder.
