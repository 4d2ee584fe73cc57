//! Latency one request at a time, interleaved over several proxies.
//!
//! `wrk -c1` against one proxy after another measures each variant in a different few
//! seconds of a shared, noisy machine; the difference of two such medians moves by tens of
//! microseconds between runs. This client sends the same request to every target in turn
//! (A B C A B C …, the starting target rotating every round) on one kept-alive connection per
//! target, so each variant's samples are spread over the same seconds and the machine's
//! noise falls on all of them alike.
//!
//! ```text
//! latency-client --body FILE [--requests N | --seconds S] [--warmup N] [--first-event]
//!     --target NAME PORT PATH [--header 'Name: value']... [--target …]
//! ```
//!
//! It runs `--warmup` rounds (not recorded), then rounds until `--requests` per target or,
//! with `--seconds`, until that much time has passed. For each target it prints, as one JSON
//! object on stdout: samples, errors, p50/p90/p99 and mean of the whole exchange (request
//! written → response read to its end), the same for the first body byte (or, with
//! `--first-event`, the first `data:` of a stream), the median number of HTTP chunks a
//! response came in, and the median of the per-round difference to the first target. Times
//! in microseconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Target {
    name: String,
    port: u16,
    request: Vec<u8>,
    conn: Option<TcpStream>,
    total: Vec<f64>,
    first: Vec<f64>,
    chunks: Vec<f64>,
    errors: u64,
    last_error: String,
}

struct Sample {
    total_us: f64,
    first_us: f64,
    /// HTTP chunks of a chunked response (0 otherwise).
    chunks: usize,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latency-client: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut body_file = None;
    let mut requests = 1000usize;
    let mut seconds: Option<f64> = None;
    let mut warmup = 100usize;
    let mut first_event = false;
    // (name, port, path, headers) until the bodies are known.
    let mut specs: Vec<(String, u16, String, Vec<String>)> = Vec::new();
    while let Some(a) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{a} needs {what}"));
        match a.as_str() {
            "--body" => body_file = Some(value("a file")?),
            "--requests" => {
                requests = value("a number")?
                    .parse()
                    .map_err(|e| format!("--requests: {e}"))?
            }
            "--seconds" => {
                seconds = Some(
                    value("seconds")?
                        .parse()
                        .map_err(|e| format!("--seconds: {e}"))?,
                )
            }
            "--warmup" => {
                warmup = value("a number")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?
            }
            "--first-event" => first_event = true,
            "--target" => {
                let name = value("a name")?;
                let port = value("a port")?
                    .parse()
                    .map_err(|e| format!("--target port: {e}"))?;
                let path = value("a path")?;
                specs.push((name, port, path, Vec::new()));
            }
            "--header" => {
                let h = value("'Name: value'")?;
                let last = specs.last_mut().ok_or("--header before any --target")?;
                last.3.push(h);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let body = std::fs::read(body_file.ok_or("--body is required")?)
        .map_err(|e| format!("--body: {e}"))?;
    if specs.is_empty() {
        return Err("no --target".into());
    }
    let mut targets: Vec<Target> = specs
        .into_iter()
        .map(|(name, port, path, headers)| {
            let mut head = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n",
                body.len()
            );
            for h in &headers {
                head.push_str(h);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            let mut request = head.into_bytes();
            request.extend_from_slice(&body);
            Target {
                name,
                port,
                request,
                conn: None,
                total: Vec::with_capacity(requests),
                first: Vec::with_capacity(requests),
                chunks: Vec::with_capacity(requests),
                errors: 0,
                last_error: String::new(),
            }
        })
        .collect();

    let n = targets.len();
    let mut buf = Vec::with_capacity(1 << 20);
    // Per round, each target's time (None when it failed), for the paired differences.
    let mut rounds: Vec<Vec<Option<f64>>> = Vec::with_capacity(requests);
    let mut started = None;
    for round in 0.. {
        if round == warmup {
            started = Some(Instant::now());
        }
        let recorded = round.saturating_sub(warmup);
        let enough = match (seconds, started) {
            (Some(s), Some(t0)) => recorded > 0 && t0.elapsed().as_secs_f64() >= s,
            _ => recorded >= requests,
        };
        if enough {
            break;
        }
        let mut times = vec![None; n];
        for k in 0..n {
            let i = (round + k) % n;
            let Some(t) = targets.get_mut(i) else {
                continue;
            };
            match exchange(t, &mut buf, first_event) {
                Ok(s) => {
                    if round >= warmup {
                        t.total.push(s.total_us);
                        t.first.push(s.first_us);
                        t.chunks.push(s.chunks as f64);
                        if let Some(slot) = times.get_mut(i) {
                            *slot = Some(s.total_us);
                        }
                    }
                }
                Err(e) => {
                    t.conn = None;
                    if round >= warmup {
                        t.errors += 1;
                    }
                    t.last_error = e;
                }
            }
        }
        if round >= warmup {
            rounds.push(times);
        }
    }

    let mut out = String::from("{\"targets\":[");
    for (i, t) in targets.iter_mut().enumerate() {
        let diffs: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(r.get(i).copied()?? - r.first().copied()??))
            .collect();
        if i > 0 {
            out.push(',');
        }
        let paired = median(diffs);
        let total = stats(&mut t.total);
        let first = stats(&mut t.first);
        out.push_str(&format!(
            "{{\"name\":{:?},\"samples\":{},\"errors\":{},\"last_error\":{:?},{},{},\"chunks\":{},\
             \"paired_added_p50_us\":{}}}",
            t.name,
            t.total.len(),
            t.errors,
            t.last_error,
            total.json(""),
            first.json("first_"),
            num(median(t.chunks.clone())),
            num(paired)
        ));
    }
    out.push_str("]}");
    println!("{out}");
    Ok(())
}

/// One request and its whole response on the target's connection (opened if needed).
fn exchange(t: &mut Target, buf: &mut Vec<u8>, first_event: bool) -> Result<Sample, String> {
    if t.conn.is_none() {
        let c = TcpStream::connect(("127.0.0.1", t.port)).map_err(|e| format!("connect: {e}"))?;
        c.set_nodelay(true).map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        t.conn = Some(c);
    }
    let conn = t.conn.as_mut().ok_or("no connection")?;
    buf.clear();
    let t0 = Instant::now();
    conn.write_all(&t.request)
        .map_err(|e| format!("write: {e}"))?;
    let mut first: Option<Instant> = None;
    let mut head_end = None;
    let mut framing = Framing::UntilClose;
    let mut chunk_pos = 0usize; // chunked: where the next chunk-size line starts
    let mut chunks = 0usize;
    let mut scan_from = 0usize; // --first-event: where to look for `data:` next
    let mut chunk = [0u8; 65536];
    loop {
        let got = conn.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        let now = Instant::now();
        if got == 0 {
            return match (head_end, &framing) {
                (Some(_), Framing::UntilClose) => {
                    t.conn = None;
                    Ok(sample(t0, first, now, chunks))
                }
                _ => Err("connection closed mid-response".into()),
            };
        }
        buf.extend_from_slice(chunk.get(..got).unwrap_or_default());
        if head_end.is_none() {
            let Some(end) = find(buf, b"\r\n\r\n", 0) else {
                continue;
            };
            let head = std::str::from_utf8(buf.get(..end).unwrap_or_default())
                .map_err(|_| "non-UTF-8 head")?;
            let status = head.get(9..12).unwrap_or("");
            if !status.starts_with('2') {
                return Err(format!("status {status}"));
            }
            for line in head.split("\r\n").skip(1) {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    framing = Framing::Length(v.parse().map_err(|_| "bad content-length")?);
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.eq_ignore_ascii_case("chunked")
                {
                    framing = Framing::Chunked;
                }
            }
            head_end = Some(end + 4);
            chunk_pos = end + 4;
            scan_from = end + 4;
        }
        let body_start = head_end.unwrap_or(0);
        if first.is_none() {
            let hit = if first_event {
                let hit = find(buf, b"data:", scan_from).is_some();
                scan_from = buf.len().saturating_sub(4).max(body_start);
                hit
            } else {
                buf.len() > body_start
            };
            if hit {
                first = Some(now);
            }
        }
        let done = match framing {
            Framing::Length(n) => buf.len() >= body_start + n,
            Framing::Chunked => loop {
                let Some(nl) = find(buf, b"\r\n", chunk_pos) else {
                    break false;
                };
                let line =
                    std::str::from_utf8(buf.get(chunk_pos..nl).unwrap_or_default()).unwrap_or("");
                let size_hex = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_hex, 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                if size == 0 {
                    // Last chunk: no trailers expected, the response ends with an empty line.
                    break buf.len() >= nl + 4;
                }
                let next = nl + 2 + size + 2;
                if buf.len() < next {
                    break false;
                }
                chunk_pos = next;
                chunks += 1;
            },
            Framing::UntilClose => false,
        };
        if done {
            return Ok(sample(t0, first, now, chunks));
        }
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn sample(t0: Instant, first: Option<Instant>, end: Instant, chunks: usize) -> Sample {
    Sample {
        chunks,
        total_us: (end - t0).as_secs_f64() * 1e6,
        first_us: (first.unwrap_or(end) - t0).as_secs_f64() * 1e6,
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

struct Stats {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    mean: Option<f64>,
}

impl Stats {
    fn json(&self, prefix: &str) -> String {
        format!(
            "\"{prefix}p50_us\":{},\"{prefix}p90_us\":{},\"{prefix}p99_us\":{},\"{prefix}mean_us\":{}",
            num(self.p50),
            num(self.p90),
            num(self.p99),
            num(self.mean)
        )
    }
}

fn stats(xs: &mut [f64]) -> Stats {
    xs.sort_by(f64::total_cmp);
    let pct = |q: f64| -> Option<f64> {
        let i = ((q * xs.len() as f64).ceil() as usize).saturating_sub(1);
        xs.get(i.min(xs.len().saturating_sub(1))).copied()
    };
    Stats {
        p50: median(xs.to_vec()),
        p90: pct(0.90),
        p99: pct(0.99),
        mean: (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64),
    }
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => xs.get(n / 2).copied(),
        _ => Some((xs.get(n / 2 - 1)? + xs.get(n / 2)?) / 2.0),
    }
}

fn num(x: Option<f64>) -> String {
    x.map_or("null".into(), |v| format!("{v:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A server on 127.0.0.1 that answers each request it reads with the next answer,
    /// each written in the given pieces (so framing split across reads is exercised).
    fn serve(answers: Vec<Vec<&'static [u8]>>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            for pieces in answers {
                let _ = s.read(&mut buf).unwrap();
                for p in pieces {
                    s.write_all(p).unwrap();
                    s.flush().unwrap();
                    thread::sleep(Duration::from_millis(5));
                }
            }
        });
        port
    }

    fn target(port: u16) -> Target {
        Target {
            name: "t".into(),
            port,
            request: b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            conn: None,
            total: vec![],
            first: vec![],
            chunks: vec![],
            errors: 0,
            last_error: String::new(),
        }
    }

    #[test]
    fn reads_length_and_chunked_answers_on_one_connection() {
        let port = serve(vec![
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhe", b"llo"],
            vec![
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n",
                b"3\r\nabc\r\n",
                b"0\r\n\r\n",
            ],
        ]);
        let mut t = target(port);
        let mut buf = Vec::new();
        let a = exchange(&mut t, &mut buf, false).unwrap();
        assert_eq!(a.chunks, 0);
        // The first body bytes came before the rest (5 ms apart).
        assert!(a.first_us < a.total_us, "{} {}", a.first_us, a.total_us);
        let b = exchange(&mut t, &mut buf, true).unwrap();
        assert_eq!(b.chunks, 2);
        assert!(
            b.first_us < b.total_us - 4000.0,
            "{} {}",
            b.first_us,
            b.total_us
        );
        assert!(t.conn.is_some(), "the connection is kept alive");
    }

    #[test]
    fn an_error_status_is_an_error() {
        let port = serve(vec![vec![
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
        ]]);
        let mut t = target(port);
        let e = exchange(&mut t, &mut Vec::new(), false).err().unwrap();
        assert_eq!(e, "status 503");
    }

    #[test]
    fn percentiles_and_medians() {
        let mut xs: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = stats(&mut xs);
        assert_eq!(
            (s.p50, s.p90, s.p99, s.mean),
            (Some(50.5), Some(90.0), Some(99.0), Some(50.5))
        );
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![]), None);
    }
}
