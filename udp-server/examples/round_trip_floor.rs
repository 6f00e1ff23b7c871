//! The floor under every lock-step benchmark: a bare UDP request and reply on loopback, with
//! no protocol, no runtime and no work between them.
//!
//! One thread answers each 4-byte request with a reply of SIZE bytes, like a TFTP server
//! answering an ACK with the next DATA block; another sends the requests one at a time, like a
//! lock-step client. It runs with the two threads on different CPUs, then on the same one
//! (Linux only: elsewhere the scheduler places them), and prints the time per round trip and
//! the reply bytes per second it allows. A lock-step transfer of SIZE-byte blocks cannot go
//! faster on the same machine, whichever server it uses.
//!
//! ```sh
//! cargo run --release -p udp-server --example round_trip_floor            # 512, 1468, 65464
//! cargo run --release -p udp-server --example round_trip_floor -- 512 8192
//! ```

use std::io;
use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

/// Round trips per measurement for replies up to 2 KiB; larger ones take a tenth.
const ROUND_TRIPS: u32 = 50_000;
/// How long either side waits for a datagram before giving up (nothing is lost on loopback;
/// this only bounds the run).
const WAIT: Duration = Duration::from_secs(5);

fn main() -> io::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| match arg.parse() {
            Ok(size) if (4..=65_507).contains(&size) => Ok(size),
            _ => Err(io::Error::other(format!(
                "`{arg}` is not a reply size in bytes (4 to 65507)"
            ))),
        })
        .collect::<io::Result<_>>()?;
    let sizes = if sizes.is_empty() {
        vec![512, 1468, 65_464]
    } else {
        sizes
    };
    println!("reply bytes | CPUs (server/client) | us per round trip | MiB/s of replies");
    for (server_cpu, client_cpu) in [(0, 1), (0, 0)] {
        for &size in &sizes {
            let round_trips = if size > 2048 {
                ROUND_TRIPS / 10
            } else {
                ROUND_TRIPS
            };
            let per_round_trip = measure(size, round_trips, server_cpu, client_cpu)?;
            let mib_per_second = size as f64 / per_round_trip.as_secs_f64() / 1_048_576.0;
            println!(
                "{size} | {server_cpu}/{client_cpu} | {:.1} | {mib_per_second:.1}",
                per_round_trip.as_secs_f64() * 1e6
            );
        }
    }
    Ok(())
}

/// The mean round trip over `round_trips` requests answered with `size` bytes.
fn measure(
    size: usize,
    round_trips: u32,
    server_cpu: usize,
    client_cpu: usize,
) -> io::Result<Duration> {
    let server = UdpSocket::bind("127.0.0.1:0")?;
    server.set_read_timeout(Some(WAIT))?;
    let address = server.local_addr()?;
    let answering = thread::spawn(move || -> io::Result<()> {
        pin_to(server_cpu);
        let reply = vec![0x5a; size];
        let mut request = [0; 64];
        for _ in 0..round_trips {
            let (_, from) = server.recv_from(&mut request)?;
            server.send_to(&reply, from)?;
        }
        Ok(())
    });
    pin_to(client_cpu);
    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.set_read_timeout(Some(WAIT))?;
    client.connect(address)?;
    let mut reply = vec![0; 65_536];
    let started = Instant::now();
    for _ in 0..round_trips {
        client.send(&[0, 4, 0, 0])?;
        client.recv(&mut reply)?;
    }
    let elapsed = started.elapsed();
    answering
        .join()
        .map_err(|_| io::Error::other("the answering thread panicked"))??;
    Ok(elapsed / round_trips)
}

/// Keeps the calling thread on `cpu`, where the OS allows it (best effort: the figures say
/// which placement was asked for).
fn pin_to(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        use nix::sched::{CpuSet, sched_setaffinity};
        use nix::unistd::Pid;
        let mut set = CpuSet::new();
        if set.set(cpu).is_ok() {
            let _ = sched_setaffinity(Pid::from_raw(0), &set);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}
