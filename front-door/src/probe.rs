//! The attacks the front door is built against, as small functions: the slowloris tests of both
//! servers drive them on loopback, and an operator can point them at a staging server.
//!
//! Linux routes all of 127.0.0.0/8 to loopback, so connections bound to 127.0.0.2, 127.0.0.3, …
//! arrive as distinct client addresses: per-client caps can be tried on one machine.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `target` from `source` (port chosen by the system).
pub async fn connect_from(source: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(target).await
}

/// How a held connection ended, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The server closed it (EOF or reset) after `after`, having sent `bytes` first.
    Closed { after: Duration, bytes: usize },
    /// Still open when we stopped waiting.
    Open,
}

/// Reads until the server closes the connection or `within` passes; whatever the server sends
/// (a 503, a 408) is read and counted, not parsed.
pub async fn wait_closed(stream: &mut TcpStream, started: Instant, within: Duration) -> Ended {
    let mut buf = [0u8; 1024];
    let mut bytes = 0;
    loop {
        let left = within.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ended::Open;
        }
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return Ended::Open,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ended::Closed {
                    after: started.elapsed(),
                    bytes,
                }
            }
            Ok(Ok(n)) => bytes += n,
        }
    }
}

/// The three ways a slow client holds a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slow {
    /// Connects and sends nothing.
    Silent,
    /// Sends a request line and headers a byte at a time, never the blank line.
    Trickle,
    /// Sends one complete request, reads the answer, and keeps the connection open.
    IdleKeepAlive,
}

/// Starts a slow client; the returned stream is in the state the kind describes. Trickling
/// goes on in a task of its own until the server closes the connection.
pub async fn slow_client(
    source: IpAddr,
    target: SocketAddr,
    kind: Slow,
    path: &str,
) -> io::Result<TcpStream> {
    let mut stream = connect_from(source, target).await?;
    match kind {
        Slow::Silent => {}
        Slow::Trickle => {
            // Only the first bytes go now; the rest would be sent one per interval by a real
            // attacker, which does not change when the server's header timer fires.
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-a: ").as_bytes())
                .await?;
        }
        Slow::IdleKeepAlive => {
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
                .await?;
            // Read the head and the (small) body; the connection stays open for the next one.
            let mut buf = vec![0u8; 16 * 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed at once",
                ));
            }
        }
    }
    Ok(stream)
}

/// One `GET` on a fresh connection from `source`: the status code and the time it took.
pub async fn get(source: IpAddr, target: SocketAddr, path: &str) -> io::Result<(u16, Duration)> {
    let started = Instant::now();
    let mut stream = connect_from(source, target).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let elapsed = started.elapsed();
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("no status: {line:?}"))
        })?;
    Ok((status, elapsed))
}

/// Resident and peak resident memory of a process, in KiB (Linux `/proc`).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
