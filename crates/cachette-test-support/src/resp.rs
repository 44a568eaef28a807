//! Just enough RESP over a raw `TcpStream` to tell whether a server is up, and whose it is.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// What a server on a loopback port answered to `PING`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// `+PONG`; `pid` is `process_id` from `INFO server`, when it could be read.
    Pong { pid: Option<u32> },
    /// `-NOAUTH ...`: up, but a password is required (so the pid is unknown).
    NoAuth,
    /// Something answered, but not with one of the above (e.g. `-LOADING`).
    Other(String),
    /// Nothing answered (refused, timed out, closed).
    Unreachable,
}

impl Probe {
    /// Whether the answer means "up and serving".
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self, Self::Pong { .. } | Self::NoAuth)
    }
}

/// Sends `PING` (and `INFO server` after a `+PONG`) to `127.0.0.1:port`.
pub(crate) fn probe(port: u16) -> Probe {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) else {
        return Probe::Unreachable;
    };
    if stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return Probe::Unreachable;
    }
    let mut reader = BufReader::new(stream);
    let Some(line) = command(&mut reader, b"*1\r\n$4\r\nPING\r\n") else {
        return Probe::Unreachable;
    };
    if line.starts_with("+PONG") {
        Probe::Pong {
            pid: info_server_pid(&mut reader),
        }
    } else if line.starts_with("-NOAUTH") {
        Probe::NoAuth
    } else {
        Probe::Other(line.trim_end().to_owned())
    }
}

/// Writes `request` and reads the first reply line.
fn command(reader: &mut BufReader<TcpStream>, request: &[u8]) -> Option<String> {
    reader.get_mut().write_all(request).ok()?;
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(n) if n > 0 => Some(line),
        _ => None,
    }
}

/// `process_id` from `INFO server`.
fn info_server_pid(reader: &mut BufReader<TcpStream>) -> Option<u32> {
    let header = command(reader, b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?;
    let len: usize = header.strip_prefix('$')?.trim_end().parse().ok()?;
    let mut body = vec![0; len + 2];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}
