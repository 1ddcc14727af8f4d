//! `wallet-server terminal ...`: enrollment codes for school staff without the web pages, and
//! listing or revoking a school's terminals.

use super::enroll;
use crate::state::AppState;
use anyhow::Context;
use clap::Subcommand;
use shared::ids::Bin;
use uuid::Uuid;

#[derive(Subcommand, Debug)]
pub enum TerminalCommand {
    /// Print a one-time enrollment code (valid 24 hours) alone on one line.
    EnrollCode {
        /// The school's BIN (12 digits).
        #[arg(long)]
        school: String,
    },
    /// List a school's terminals: id, label, enrolled, last sync, clock offset, last seq.
    List {
        #[arg(long)]
        school: String,
    },
    /// Revoke a terminal: it is refused from its next call on.
    Revoke {
        /// The terminal id (UUID).
        id: String,
    },
}

fn time(ts: Option<i64>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t + shared::KZ_OFFSET_SECONDS, 0))
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn run(state: &AppState, cmd: TerminalCommand) -> anyhow::Result<()> {
    match cmd {
        TerminalCommand::EnrollCode { school } => {
            let issued = enroll::create_code(state, &school, "cli").await?;
            // stdout carries the code alone: other programs read it.
            println!("{}", issued.code);
            eprintln!(
                "one-time enrollment code for {} (BIN {}), valid until {} local time",
                issued.school.name,
                issued.school.bin,
                time(Some(issued.expires_at))
            );
            Ok(())
        }
        TerminalCommand::List { school } => {
            let bin =
                Bin::parse(&school).with_context(|| format!("{school:?} is not a valid BIN"))?;
            let school = state
                .store
                .school_by_bin(bin.as_str())
                .await?
                .with_context(|| format!("no school with BIN {bin}"))?;
            println!(
                "{:<36}  {:<20}  {:<16}  {:<16}  {:>8}  {:>8}  status",
                "id", "label", "enrolled", "last sync", "offset_s", "last_seq"
            );
            for t in state.store.terminals_of_school(school.code).await? {
                println!(
                    "{:<36}  {:<20}  {:<16}  {:<16}  {:>8}  {:>8}  {}",
                    t.id,
                    t.label,
                    time(Some(t.enrolled_at)),
                    time(t.last_sync_at),
                    t.clock_offset
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "-".into()),
                    t.last_seq,
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                );
            }
            Ok(())
        }
        TerminalCommand::Revoke { id } => {
            let id = Uuid::parse_str(id.trim())
                .with_context(|| format!("{id:?} is not a terminal id (a UUID)"))?;
            match state.store.revoke_terminal(id, "cli", state.now()).await {
                Ok(true) => eprintln!("terminal {id} revoked"),
                Ok(false) => eprintln!("terminal {id} was already revoked"),
                Err(crate::store::StoreError::NotFound) => {
                    anyhow::bail!("no terminal with id {id}")
                }
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }
    }
}
