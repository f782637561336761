//! plg-bench: TCP workloads for measuring `plg record` against the kernel's own path (veth).
//!
//! `plg-bench server --port P --mode M` serves one workload; `plg-bench client --host H --port P
//! --mode M ...` runs it and prints one JSON line of results. Modes:
//! - `bulk`: one stream; the client sends for `--seconds` (or `--bytes`), half-closes, and the
//!   server answers with the byte count it received (8 bytes, big-endian).
//! - `rtt`: one connection, `--count` 1-byte request/response round trips (TCP_NODELAY).
//! - `connrate`: for `--seconds`, connect, 1 byte each way, close (the server closes first, so
//!   TIME_WAIT stays on the server side and the client never runs out of ports).
//! - `concurrent`: `--conns` connections opened at once, then each sends `--bytes` at the same
//!   time; each is answered with its byte count, and the totals are checked.
//! - `hold`: `--conns` connections all open at once with little traffic (what a relay's
//!   connection table costs): the client opens them all, then sends `--bytes` on each and
//!   half-closes, then reads every answer; the server (given the same `--conns`) accepts them
//!   all before answering any. One thread each side, so tens of thousands stay cheap.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "usage:
  plg-bench server --port P --mode bulk|rtt|connrate|concurrent
  plg-bench server --port P --mode hold --conns C
  plg-bench client --host H --port P --mode bulk [--seconds S | --bytes N] [--buf N]
  plg-bench client --host H --port P --mode rtt [--count N]
  plg-bench client --host H --port P --mode connrate [--seconds S]
  plg-bench client --host H --port P --mode concurrent [--conns C] [--bytes N]
  plg-bench client --host H --port P --mode hold [--conns C] [--bytes N]
Prints one JSON line of results (client).";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Bulk,
    Rtt,
    ConnRate,
    Concurrent,
    Hold,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "bulk" => Ok(Mode::Bulk),
            "rtt" => Ok(Mode::Rtt),
            "connrate" => Ok(Mode::ConnRate),
            "concurrent" => Ok(Mode::Concurrent),
            "hold" => Ok(Mode::Hold),
            _ => Err(format!("unknown mode {s:?}")),
        }
    }
}

struct Opts {
    host: String,
    port: u16,
    mode: Mode,
    seconds: f64,
    bytes: Option<u64>,
    count: u64,
    conns: usize,
    buf: usize,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        port: 5201,
        mode: Mode::Bulk,
        seconds: 5.0,
        bytes: None,
        count: 20_000,
        conns: 1000,
        buf: 256 * 1024,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let num = |v: String| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--host" => o.host = val()?,
            "--port" => o.port = num(val()?)? as u16,
            "--mode" => o.mode = Mode::parse(&val()?)?,
            "--seconds" => {
                let v = val()?;
                o.seconds = v.parse().map_err(|_| format!("--seconds: {v}"))?
            }
            "--bytes" => o.bytes = Some(num(val()?)?),
            "--count" => o.count = num(val()?)?,
            "--conns" => o.conns = num(val()?)? as usize,
            "--buf" => o.buf = num(val()?)?.max(1) as usize,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let opts = match parse(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("plg-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        "server" => server(&opts),
        "client" => client(&opts),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plg-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Threads serving a connection: small stacks, so a thousand of them stay cheap.
fn spawn<F: FnOnce() + Send + 'static>(f: F) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().stack_size(128 * 1024).spawn(f)
}

fn server(o: &Opts) -> io::Result<()> {
    let listener = listen(o.port)?;
    if o.mode == Mode::Hold {
        return serve_hold(&listener, o.conns);
    }
    let mode = o.mode;
    let buf = o.buf;
    loop {
        let (s, _) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and the like: say so, keep serving.
                eprintln!("plg-bench server: accept: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if mode == Mode::ConnRate {
            // Served right here: a thread per connection would cost more than the connection.
            if let Err(e) = serve_one(s) {
                eprintln!("plg-bench server: {e}");
            }
            continue;
        }
        let r = spawn(move || {
            let r = match mode {
                Mode::Bulk | Mode::Concurrent | Mode::Hold => serve_sink(s, buf),
                Mode::Rtt | Mode::ConnRate => serve_echo(s),
            };
            if let Err(e) = r {
                eprintln!("plg-bench server: {e}");
            }
        });
        if let Err(e) = r {
            eprintln!("plg-bench server: spawn: {e}");
        }
    }
}

/// A listener with a backlog deep enough for a thousand connects in a row (std's is 128), on
/// both families (`[::]` dual stack), or IPv4 only where the namespace has no IPv6.
fn listen(port: u16) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let dual = || -> io::Result<Socket> {
        let sock = Socket::new(Domain::IPV6, Type::STREAM, None)?;
        sock.set_only_v6(false)?;
        sock.set_reuse_address(true)?;
        sock.bind(&std::net::SocketAddr::from(([0u16; 8], port)).into())?;
        Ok(sock)
    };
    let sock = match dual() {
        Ok(s) => s,
        Err(_) => {
            let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
            sock.set_reuse_address(true)?;
            sock.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], port)).into())?;
            sock
        }
    };
    sock.listen(4096)?;
    Ok(sock.into())
}

/// Reads until EOF, then answers with the number of bytes read.
fn serve_sink(mut s: TcpStream, buf: usize) -> io::Result<()> {
    let mut b = vec![0u8; buf];
    let mut total = 0u64;
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    s.write_all(&total.to_be_bytes())?;
    s.shutdown(Shutdown::Write)
}

fn serve_echo(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut b = [0u8; 4096];
    loop {
        let n = s.read(&mut b)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&b[..n])?;
    }
}

/// One byte in, one byte out, then close (the server closes first).
fn serve_one(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    s.write_all(&b)?;
    Ok(())
}

fn connect(o: &Opts) -> io::Result<TcpStream> {
    let addr = (o.host.as_str(), o.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{}: no address", o.host)))?;
    TcpStream::connect(addr)
}

fn client(o: &Opts) -> io::Result<()> {
    let line = match o.mode {
        Mode::Bulk => bulk(o)?,
        Mode::Rtt => rtt(o)?,
        Mode::ConnRate => connrate(o)?,
        Mode::Concurrent => concurrent(o)?,
        Mode::Hold => hold(o)?,
    };
    println!("{line}");
    Ok(())
}

fn read_count(s: &mut TcpStream) -> io::Result<u64> {
    let mut c = [0u8; 8];
    s.read_exact(&mut c)?;
    Ok(u64::from_be_bytes(c))
}

/// A repeating pattern, so the bytes are not all zero.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn bulk(o: &Opts) -> io::Result<String> {
    let mut s = connect(o)?;
    let buf = pattern(o.buf);
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(o.seconds);
    let mut sent = 0u64;
    loop {
        let want = match o.bytes {
            Some(limit) => {
                if sent >= limit {
                    break;
                }
                (limit - sent).min(buf.len() as u64) as usize
            }
            None => {
                if start.elapsed() >= deadline {
                    break;
                }
                buf.len()
            }
        };
        s.write_all(&buf[..want])?;
        sent += want as u64;
    }
    s.shutdown(Shutdown::Write)?;
    let got = read_count(&mut s)?;
    let secs = start.elapsed().as_secs_f64();
    let gbps = sent as f64 * 8.0 / secs / 1e9;
    Ok(format!(
        "{{\"mode\":\"bulk\",\"sent\":{sent},\"received\":{got},\"ok\":{},\"seconds\":{secs:.4},\"gbit_per_s\":{gbps:.4}}}",
        sent == got
    ))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn rtt(o: &Opts) -> io::Result<String> {
    let mut s = connect(o)?;
    s.set_nodelay(true)?;
    let mut b = [0u8; 1];
    // A few round trips first, so the connection is warm.
    for _ in 0..100 {
        s.write_all(&[7])?;
        s.read_exact(&mut b)?;
    }
    let mut us = Vec::with_capacity(o.count as usize);
    let start = Instant::now();
    for i in 0..o.count {
        let t = Instant::now();
        s.write_all(&[i as u8])?;
        s.read_exact(&mut b)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if b[0] != i as u8 {
            return Err(io::Error::other("rtt: echoed byte differs"));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    s.shutdown(Shutdown::Write)?;
    let _ = s.read(&mut b);
    us.sort_by(|a, b| a.total_cmp(b));
    Ok(format!(
        "{{\"mode\":\"rtt\",\"count\":{},\"seconds\":{secs:.4},\"median_us\":{:.2},\"p99_us\":{:.2},\"min_us\":{:.2},\"max_us\":{:.2}}}",
        o.count,
        percentile(&us, 0.5),
        percentile(&us, 0.99),
        percentile(&us, 0.0),
        percentile(&us, 1.0)
    ))
}

fn connrate(o: &Opts) -> io::Result<String> {
    let addr = (o.host.as_str(), o.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{}: no address", o.host)))?;
    let deadline = Duration::from_secs_f64(o.seconds);
    let start = Instant::now();
    let (mut done, mut failed) = (0u64, 0u64);
    let mut ms = Vec::new();
    let mut first_err = String::new();
    while start.elapsed() < deadline {
        let t = Instant::now();
        let r = (|| -> io::Result<()> {
            let mut s = TcpStream::connect(addr)?;
            s.set_nodelay(true)?;
            s.write_all(&[1])?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
            // Wait for the server's FIN, then close.
            let _ = s.read(&mut b)?;
            Ok(())
        })();
        match r {
            Ok(()) => {
                done += 1;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            Err(e) => {
                failed += 1;
                if first_err.is_empty() {
                    first_err = e.to_string();
                }
                if failed > 100 {
                    break;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(format!(
        "{{\"mode\":\"connrate\",\"connections\":{done},\"failed\":{failed},\"seconds\":{secs:.4},\"conn_per_s\":{:.1},\"median_ms\":{:.3},\"p99_ms\":{:.3},\"slowest_ms\":{:.3},\"error\":{:?}}}",
        done as f64 / secs,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        percentile(&ms, 1.0),
        first_err
    ))
}

fn concurrent(o: &Opts) -> io::Result<String> {
    let per = o.bytes.unwrap_or(1 << 20);
    let n = o.conns;
    // Open every connection first, then start them all at once.
    let mut socks = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        socks.push(connect(o)?);
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let barrier = Arc::new(Barrier::new(n + 1));
    let received = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let buf = Arc::new(pattern(o.buf.min(64 * 1024)));
    let mut handles = Vec::with_capacity(n);
    for mut s in socks {
        let (barrier, received, ok, buf) =
            (barrier.clone(), received.clone(), ok.clone(), buf.clone());
        handles.push(spawn(move || {
            barrier.wait();
            let r = (|| -> io::Result<u64> {
                let mut left = per;
                while left > 0 {
                    let k = left.min(buf.len() as u64) as usize;
                    s.write_all(&buf[..k])?;
                    left -= k as u64;
                }
                s.shutdown(Shutdown::Write)?;
                read_count(&mut s)
            })();
            match r {
                Ok(got) => {
                    received.fetch_add(got, Ordering::Relaxed);
                    if got == per {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => eprintln!("plg-bench client: {e}"),
            }
        })?);
    }
    let start = Instant::now();
    barrier.wait();
    for h in handles {
        let _ = h.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = per * n as u64;
    let received = received.load(Ordering::Relaxed);
    let ok = ok.load(Ordering::Relaxed);
    Ok(format!(
        "{{\"mode\":\"concurrent\",\"conns\":{n},\"conns_ok\":{ok},\"sent\":{sent},\"received\":{received},\"ok\":{},\"connect_seconds\":{connect_secs:.4},\"seconds\":{secs:.4},\"gbit_per_s\":{:.4}}}",
        ok == n as u64 && received == sent,
        received as f64 * 8.0 / secs / 1e9
    ))
}

/// Accepts `n` connections, then answers each with its byte count; again for every batch.
fn serve_hold(listener: &TcpListener, n: usize) -> io::Result<()> {
    loop {
        let mut held = Vec::with_capacity(n);
        while held.len() < n.max(1) {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("plg-bench server: accept: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
        for s in held {
            if let Err(e) = serve_sink(s, 64 * 1024) {
                eprintln!("plg-bench server: {e}");
            }
        }
    }
}

fn hold(o: &Opts) -> io::Result<String> {
    let per = o.bytes.unwrap_or(1024);
    let n = o.conns;
    let t0 = Instant::now();
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        socks.push(connect(o)?);
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let buf = pattern(per.min(64 * 1024) as usize);
    let start = Instant::now();
    // Small writes fit the socket buffers, so sending everything before reading anything
    // never blocks on the (one-threaded) server.
    for s in socks.iter_mut() {
        let mut left = per;
        while left > 0 {
            let k = left.min(buf.len() as u64) as usize;
            s.write_all(&buf[..k])?;
            left -= k as u64;
        }
        s.shutdown(Shutdown::Write)?;
    }
    let (mut received, mut ok) = (0u64, 0u64);
    for s in socks.iter_mut() {
        match read_count(s) {
            Ok(got) => {
                received += got;
                ok += u64::from(got == per);
            }
            Err(e) => eprintln!("plg-bench client: {e}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = per * n as u64;
    Ok(format!(
        "{{\"mode\":\"hold\",\"conns\":{n},\"conns_ok\":{ok},\"sent\":{sent},\"received\":{received},\"ok\":{},\"connect_seconds\":{connect_secs:.4},\"seconds\":{secs:.4},\"gbit_per_s\":{:.4}}}",
        ok == n as u64 && received == sent,
        received as f64 * 8.0 / secs / 1e9
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes_and_numbers() {
        let a: Vec<String> = ["--mode", "rtt", "--count", "5", "--host", "p0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse(&a).unwrap();
        assert_eq!(o.mode, Mode::Rtt);
        assert_eq!(o.count, 5);
        assert_eq!(o.host, "p0");
        assert_eq!(Mode::parse("concurrent").unwrap(), Mode::Concurrent);
        assert!(parse(&["--bogus".to_string()]).is_err());
    }

    #[test]
    fn percentile_picks_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 1.0), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
