//! The Tamaq wallet server.
