//! The school-side subcommands: `staff add` and `report nobd` (DESIGN §6.1).

use crate::cli::{open_state, Global};
use crate::clock::Clock;
use anyhow::Context;
use clap::Subcommand;
use std::io::BufRead;

#[derive(Subcommand, Debug)]
pub enum StaffCommand {
    /// Create a staff account; the password is read from standard input (one line).
    Add {
        #[arg(long)]
        username: String,
        /// school_admin, authority or operator.
        #[arg(long)]
        role: String,
        /// A school the account may see (repeat for several; not for operators).
        #[arg(long = "school", value_name = "BIN")]
        schools: Vec<String>,
    },
    /// List staff accounts: username, role, schools, whether disabled.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop an account signing in; its open sessions end at once.
    Disable { username: String },
    /// Let a disabled account sign in again.
    Enable { username: String },
    /// Set a new password, read from standard input (one line); open sessions end.
    ResetPassword { username: String },
}

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Build and deliver the NOBD daily reports of a day (today: a preliminary revision).
    Nobd {
        /// The service day, YYYY-MM-DD (local time).
        #[arg(long)]
        date: String,
        /// Only this school.
        #[arg(long, value_name = "BIN")]
        school: Option<String>,
    },
}

/// One line from `input`, without its line ending; nothing else is trimmed (spaces may be part
/// of a password).
pub fn read_password(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    Ok(pw.strip_suffix('\r').unwrap_or(pw).to_owned())
}

pub async fn run_staff(global: &Global, cmd: StaffCommand) -> anyhow::Result<()> {
    match cmd {
        StaffCommand::Add {
            username,
            role,
            schools,
        } => {
            let password = read_password(&mut std::io::stdin().lock())?;
            let state = open_state(global, Clock::System, false).await?;
            let account = crate::staff::add_staff(
                state.store.as_ref(),
                &username,
                &role,
                &schools,
                &password,
                "cli",
                state.now(),
            )
            .await?;
            println!(
                "staff account {} created (role {})",
                account.username, account.role
            );
            Ok(())
        }
        StaffCommand::List { json } => {
            let state = open_state(global, Clock::System, false).await?;
            let accounts = crate::staff::accounts::list(state.store.as_ref()).await?;
            if json {
                for a in &accounts {
                    println!("{}", serde_json::to_string(a)?);
                }
            } else {
                println!("{:<24} {:<13} {:<9} schools", "username", "role", "state");
                for a in &accounts {
                    println!(
                        "{:<24} {:<13} {:<9} {}",
                        a.username,
                        a.role,
                        if a.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        },
                        if a.schools.is_empty() {
                            "(all)".to_owned()
                        } else {
                            a.schools.join(",")
                        }
                    );
                }
            }
            Ok(())
        }
        StaffCommand::Disable { username } => {
            let state = open_state(global, Clock::System, false).await?;
            let done = crate::staff::accounts::disable(
                state.store.as_ref(),
                &username,
                "cli",
                state.now(),
            )
            .await?;
            if done.unchanged {
                println!("{username} was already disabled");
            } else {
                println!(
                    "{username} disabled; {} open session(s) ended",
                    done.sessions_ended
                );
            }
            Ok(())
        }
        StaffCommand::Enable { username } => {
            let state = open_state(global, Clock::System, false).await?;
            let done =
                crate::staff::accounts::enable(state.store.as_ref(), &username, "cli", state.now())
                    .await?;
            if done.unchanged {
                println!("{username} was not disabled");
            } else {
                println!("{username} enabled");
            }
            Ok(())
        }
        StaffCommand::ResetPassword { username } => {
            let password = read_password(&mut std::io::stdin().lock())?;
            let state = open_state(global, Clock::System, false).await?;
            let done = crate::staff::accounts::reset_password(
                state.store.as_ref(),
                &username,
                &password,
                "cli",
                state.now(),
            )
            .await?;
            println!(
                "new password set for {username}; {} open session(s) ended",
                done.sessions_ended
            );
            Ok(())
        }
    }
}

pub async fn run_report(global: &Global, cmd: ReportCommand) -> anyhow::Result<()> {
    match cmd {
        ReportCommand::Nobd { date, school } => {
            let date = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
                .with_context(|| format!("--date {date:?} is not YYYY-MM-DD"))?;
            let state = open_state(global, Clock::System, false).await?;
            let out = crate::nobd::report_command(&state, date, school.as_deref()).await?;
            for id in &out.build.new_reports {
                println!("new report {id}");
            }
            println!(
                "{date}: {} school(s), {} new revision(s), {} unchanged; delivered {}",
                out.build.schools,
                out.build.new_reports.len(),
                out.build.unchanged,
                out.delivery.delivered
            );
            if !out.undelivered.is_empty() {
                let why = match out.undelivered.iter().find_map(|r| r.last_error.clone()) {
                    Some(last) => format!(" (last error: {last})"),
                    None => String::new(),
                };
                anyhow::bail!(
                    "{} report(s) wait in the outbox{why}; they are kept and `wallet-server serve` retries them",
                    out.undelivered.len()
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_one_line_without_its_ending() {
        let mut input = "s3cret pass\r\nnext\n".as_bytes();
        assert_eq!(read_password(&mut input).unwrap(), "s3cret pass");
        let mut empty = "".as_bytes();
        assert_eq!(read_password(&mut empty).unwrap(), "");
    }
}
