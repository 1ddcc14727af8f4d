//! The Tamaq canteen terminal.
